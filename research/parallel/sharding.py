"""Device mesh and shardings: batches split over the `data` axis, parameters replicated."""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from research.errors import UserError
from research.platform import xla_flags

DATA_AXIS = "data"


def make_mesh(num_devices: int = 0) -> Mesh:
    """A 1-D `data` mesh over the first `num_devices` devices (0: all of them)."""
    devices = jax.devices()
    xla_flags.check_devices(devices)
    if num_devices:
        if num_devices > len(devices):
            raise UserError(f"mesh.num_devices={num_devices} but only {len(devices)} devices exist")
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh, leading_axes: int = 0) -> NamedSharding:
    """Examples split over `data`; `leading_axes` unsplit axes before the example axis
    (stacked runs of a vectorized sweep have one)."""
    return NamedSharding(mesh, PartitionSpec(*[None] * leading_axes, DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, what: str) -> None:
    if batch_size % mesh.size:
        raise UserError(
            f"{what}={batch_size} is not divisible by the {mesh.size} devices of the mesh; "
            f"use a multiple of {mesh.size}")


def put_batch(batch: dict[str, np.ndarray], mesh: Mesh, leading_axes: int = 0) -> dict[str, jax.Array]:
    """Host batch (this process's rows) to a global array sharded over `data`."""
    sharding = batch_sharded(mesh, leading_axes)
    if jax.process_count() == 1:
        # The process holds the whole batch: one batched transfer, about half the per-step
        # host time of assembling global arrays from process-local pieces.
        return jax.device_put(batch, sharding)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
