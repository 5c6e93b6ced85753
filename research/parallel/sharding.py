"""The device mesh and how arrays lie on it.

The mesh has three named axes: `data` and `fsdp` split every batch; `fsdp` also splits each
parameter and its optimizer moments along one dimension; `tensor` splits the Transformer
families' attention heads and MLP units (Megatron-style). Which parameter dimension goes where
is data, not code: modules name their parameters' axes with Flax logical names
(`nn.with_logical_partitioning`), `LOGICAL_RULES` maps those names to mesh axes, and FSDP adds
the largest remaining dimension divisible by the `fsdp` size (small parameters stay whole).
"""

import contextlib
import contextvars
import functools
import math

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from research.errors import UserError
from research.platform import xla_flags

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")  # Examples are split over both.

# Logical axis names used by the models -> mesh axes (None: not split). One table for every
# model, for parameters and activations alike; a parameter whose axes have no names is split by
# the FSDP rule only.
LOGICAL_RULES = (
    ("batch", BATCH_AXES),  # Activations' example axis: as the input batch lies.
    ("length", None),  # Activations' token axis.
    ("embed", None),  # The residual stream's width.
    ("heads", "tensor"),  # Attention heads: each tensor-parallel device computes some heads.
    ("kv", None),  # Width of one head.
    ("mlp", "tensor"),  # MLP hidden units: the first matmul splits them, the second reduces.
    ("vocab", "tensor"),  # Embedding rows and output logits.
    ("layers", None),  # Scanned blocks' stacking axis (model.scan): every device holds every layer's part.
)


def check_mesh_sizes(mesh_config) -> None:
    """Each axis size is 1 or more, or -1 (the devices the others leave) on at most one axis."""
    for axis in MESH_AXES:
        if mesh_config[axis] != -1 and mesh_config[axis] < 1:
            raise UserError(f"mesh.{axis}={mesh_config[axis]!r}; it must be a size of 1 or more, or -1 for "
                            f"the devices the other axes leave (--config.mesh.{axis})")
    if [mesh_config[axis] for axis in MESH_AXES].count(-1) > 1:
        raise UserError("at most one of mesh.data, mesh.fsdp and mesh.tensor may be -1")


def mesh_shape(mesh_config, device_count: int) -> dict[str, int]:
    """The sizes of `data`, `fsdp` and `tensor` for `device_count` devices: -1 on one axis takes
    what the others leave."""
    check_mesh_sizes(mesh_config)
    sizes = {axis: int(mesh_config[axis]) for axis in MESH_AXES}
    given = f"mesh.data={sizes['data']}, mesh.fsdp={sizes['fsdp']}, mesh.tensor={sizes['tensor']}"
    fill = [axis for axis, size in sizes.items() if size == -1]
    known = math.prod(size for size in sizes.values() if size != -1)
    if fill:
        if device_count % known:
            raise UserError(f"{given}: {device_count} devices do not divide into {known}s; choose sizes "
                            f"whose product divides {device_count}")
        sizes[fill[0]] = device_count // known
    if math.prod(sizes.values()) != device_count:
        raise UserError(f"{given}: the mesh needs {math.prod(sizes.values())} devices but this run has "
                        f"{device_count}; make the product {device_count}, or set one size to -1")
    return sizes


def make_mesh(mesh_config=None) -> Mesh:
    """The (data, fsdp, tensor) mesh over the first `mesh.num_devices` devices (0: all); with no
    config, every device on `data`."""
    if mesh_config is None:
        mesh_config = ml_collections.ConfigDict({"num_devices": 0, "data": -1, "fsdp": 1, "tensor": 1})
    devices = jax.devices()
    xla_flags.check_devices(jax.local_devices())  # Devices sharing this process's thread pool.
    if mesh_config.num_devices:
        if mesh_config.num_devices > len(devices):
            raise UserError(f"mesh.num_devices={mesh_config.num_devices} but only {len(devices)} "
                            "devices exist")
        devices = devices[:mesh_config.num_devices]
    sizes = mesh_shape(mesh_config, len(devices))
    shape = tuple(sizes[axis] for axis in MESH_AXES)
    try:  # Places neighbouring axes on neighbouring chips where the topology is known (TPU).
        grid = mesh_utils.create_device_mesh(shape, devices)
    except (ValueError, NotImplementedError, AssertionError):
        grid = np.asarray(devices).reshape(shape)
    return Mesh(grid, MESH_AXES)


def describe(mesh: Mesh) -> dict:
    return {"shape": dict(mesh.shape), "devices": mesh.size,
            "logical_rules": [list(rule) for rule in LOGICAL_RULES]}


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh, leading_axes: int = 0) -> NamedSharding:
    """Examples split over `data` and `fsdp`; `leading_axes` unsplit axes before the example
    axis (stacked runs of a vectorized sweep, stacked steps of a multi-step call)."""
    return NamedSharding(mesh, PartitionSpec(*[None] * leading_axes, BATCH_AXES))


def batch_ways(mesh: Mesh) -> int:
    return math.prod(mesh.shape[axis] for axis in BATCH_AXES)


def check_batch_size(batch_size: int, mesh: Mesh, what: str, microbatches: int = 1) -> None:
    """`batch_size` splits into `microbatches` (gradient accumulation), each over data x fsdp."""
    ways = batch_ways(mesh)
    if batch_size % (microbatches * ways) == 0:
        return
    if microbatches == 1:
        raise UserError(
            f"{what}={batch_size} is not divisible by the {ways} ways a batch is split (mesh data x "
            f"fsdp); use a multiple of {ways}")
    raise UserError(f"{what}={batch_size} does not split into train.grad_accum_steps={microbatches} "
                    f"microbatches of a multiple of {ways} (the mesh's data x fsdp); use a batch size "
                    f"that is a multiple of {microbatches * ways}")


def process_rows(mesh: Mesh, batch_size: int) -> slice | None:
    """The rows of a global batch that this process's devices hold (None when one process holds
    every device): what its input pipeline reads. The mesh lists devices process by process,
    so each process's rows are one range."""
    if jax.process_count() == 1:
        return None
    spans = {index[0].indices(batch_size)[:2]
             for index in batch_sharded(mesh).addressable_devices_indices_map((batch_size,)).values()}
    start, stop = min(a for a, _ in spans), max(b for _, b in spans)
    if sum(b - a for a, b in spans) != stop - start:
        raise UserError(f"this process's devices hold rows {sorted(spans)} of each batch, not one range; "
                        "put the mesh's data and fsdp axes over whole processes")
    return slice(start, stop)


def put_batch(batch: dict[str, np.ndarray], mesh: Mesh, leading_axes: int = 0) -> dict[str, jax.Array]:
    """Host batch (this process's rows) to a global array split over `data` and `fsdp`."""
    sharding = batch_sharded(mesh, leading_axes)
    if jax.process_count() == 1:
        # The process holds the whole batch: one batched transfer, about half the per-step
        # host time of assembling global arrays from process-local pieces.
        return jax.device_put(batch, sharding)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def _divisible(axes: list, shape: tuple[int, ...], mesh: Mesh) -> list:
    """`axes` (one mesh axis, a tuple of them, or None a dimension) with every entry that splits
    nothing (size 1) or does not divide its dimension left whole."""
    def ways(axis):
        return math.prod(mesh.shape[a] for a in ((axis,) if isinstance(axis, str) else axis))
    return [axis if axis is not None and ways(axis) > 1 and size % ways(axis) == 0 else None
            for axis, size in zip(axes, shape, strict=True)]


def param_spec(shape: tuple[int, ...], logical: PartitionSpec, mesh: Mesh) -> PartitionSpec:
    """Where one parameter lies: its logical axis names through LOGICAL_RULES (a mesh axis of
    size 1, or one that does not divide the dimension, leaves it whole), then FSDP over the
    largest dimension still whole that `fsdp` divides."""
    names = tuple(logical) + (None,) * (len(shape) - len(logical))
    axes = list(nn.logical_to_mesh_axes(names, LOGICAL_RULES)) if any(names) else [None] * len(shape)
    axes = _divisible(axes, shape, mesh)
    fsdp = mesh.shape["fsdp"]
    if fsdp > 1:
        whole = [d for d, axis in enumerate(axes) if axis is None and shape[d] % fsdp == 0]
        if whole:
            axes[max(whole, key=lambda d: (shape[d], -d))] = "fsdp"
    return PartitionSpec(*axes)


# The mesh the step being traced runs on, for `constrain`; None outside `on_mesh`.
_ACTIVATION_MESH: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar("activation_mesh",
                                                                                default=None)


def on_mesh(fn, mesh: Mesh):
    """`fn` traced with `mesh` as the layout of the activations its models `constrain`: what the
    loop, the vectorized sweeps and the dry run jit. Outside it (export, sampling, a model
    applied by hand) `constrain` does nothing, so a model stays free of any mesh."""
    @functools.wraps(fn)
    def traced_on_mesh(*args, **kwargs):
        with _activation_mesh(mesh):
            return fn(*args, **kwargs)
    return traced_on_mesh


@contextlib.contextmanager
def _activation_mesh(mesh: Mesh):
    token = _ACTIVATION_MESH.set(mesh)
    try:
        yield
    finally:
        _ACTIVATION_MESH.reset(token)


def constrain(x: jax.Array, *names: str | None) -> jax.Array:
    """`x` pinned to the layout its logical axis `names` give through LOGICAL_RULES on the mesh
    of `on_mesh` (an axis the mesh axis does not divide stays whole). Without it XLA may choose
    the layout of an activation from its parameters', and gather a whole batch to a device.

    Flax's `with_logical_constraint` does the same from a global mesh, but keeps a mesh axis
    that does not divide the dimension (a 65-character vocabulary over 2 tensor devices)."""
    mesh = _ACTIVATION_MESH.get()
    if mesh is None or mesh.size == 1:
        return x
    axes = _divisible(list(nn.logical_to_mesh_axes(names, LOGICAL_RULES)), x.shape, mesh)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec(*axes)))


def state_shardings(abstract_state: dict, logical_params, mesh: Mesh) -> dict:
    """NamedShardings for a train state's fields (shapes only; step, params, opt_state and
    model_state): each parameter by `param_spec`, each optimizer-state array shaped like a
    parameter (Adam's moments, a pruning mask) like that parameter, found by its path ending
    in the parameter's path; everything else replicated."""
    param_paths = {}
    specs = jax.tree_util.tree_map_with_path(
        lambda path, leaf, logical: param_spec(leaf.shape, logical, mesh),
        abstract_state["params"], logical_params, is_leaf=lambda x: isinstance(x, PartitionSpec))
    for path, spec in jax.tree_util.tree_flatten_with_path(
            specs, is_leaf=lambda x: isinstance(x, PartitionSpec))[0]:
        param_paths[tuple(path)] = spec
    shapes = {tuple(path): leaf.shape
              for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_state["params"])[0]}
    if mesh.shape["tensor"] > 1 and not any("tensor" in spec for spec in param_paths.values()):
        logging.warning("mesh.tensor=%d, but no parameter of this model has an axis the tensor rule "
                        "splits (heads, mlp, vocab: the Transformer families'): the tensor devices hold "
                        "copies and compute the same; put those devices on data or fsdp instead",
                        mesh.shape["tensor"])

    def like_a_param(path, leaf):
        path = tuple(path)
        for start in range(len(path)):
            suffix = path[start:]
            if suffix in param_paths and shapes[suffix] == leaf.shape:
                return NamedSharding(mesh, param_paths[suffix])
        return replicated(mesh)

    return {
        "step": replicated(mesh),
        "params": jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs,
                               is_leaf=lambda x: isinstance(x, PartitionSpec)),
        "opt_state": jax.tree_util.tree_map_with_path(like_a_param, abstract_state["opt_state"]),
        "model_state": jax.tree.map(lambda _: replicated(mesh), abstract_state["model_state"]),
    }


def per_device_bytes(tree) -> int:
    """Bytes of `tree`'s arrays held on the most loaded device (from their addressable shards,
    or their shardings for abstract arrays)."""
    totals = {}
    for leaf in jax.tree.leaves(tree):
        itemsize = np.dtype(leaf.dtype).itemsize
        for device, index in leaf.sharding.devices_indices_map(leaf.shape).items():
            shard = math.prod(len(range(*s.indices(n))) for s, n in zip(index, leaf.shape, strict=True))
            totals[device] = totals.get(device, 0) + shard * itemsize
    return max(totals.values(), default=0)
