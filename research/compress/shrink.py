"""Structured pruning (`config.shrink.source=WORKDIR`): this run's model is a narrower copy of
a finished run's, with fewer convolution channels and dense units, and it starts from the
source's weights for the ones it keeps.

The config names the smaller widths (`model.conv_features`, `model.dense_sizes` or
`model.hidden_sizes`, one entry per layer as in the source); for each layer the channels with
the highest score under `shrink.criterion` are kept, the rest removed with every weight that
reads them (the next layer's input rows, BatchNorm's entries). What remains is a model of the
family like any other: its config.json holds the reduced widths and its checkpoints the kept
weights, so it trains (fine-tunes), evaluates, exports and serves as any run, and its exported
files and latency shrink with it.

Criteria (scores are per output channel of a layer, ranked within that layer):
  bn_scale  |gamma| of the BatchNorm after the layer (Liu et al. 2017, "Learning efficient
            convolutional networks through network slimming"): BatchNorm divides out the
            scale of a channel's filter, so gamma is what sets how much the channel passes on.
            Layers without a BatchNorm after them fall back to l1.
  l1        the L1 norm of the channel's incoming weights (Li et al. 2017, "Pruning filters
            for efficient ConvNets").
  l2        their L2 norm.
Removing a channel is exact for the channels kept: in eval mode the narrow model computes what
the wide one does with the removed channels' outgoing weights set to zero.

Transformers (lm, transformer, vit): each block keeps `model.heads` of its attention heads and
`model.mlp_dim` of its MLP units; the residual stream (`hidden`) stays. The narrow config sets
`model.head_dim` to the source's head width (hidden // heads of the source), so a kept head is
the source's head. A head is scored by the norm of all its weights (its query, key and value
projections and its slice of the output projection: what it reads and what it writes back to
the stream), a unit by the norm of its incoming weights; bn_scale, with no BatchNorm in a block,
is l1 there.

Families: cnn, mlp (without `residual`, whose skips tie a layer's channels to its input's), and
the Transformer families. Written here because no library we use removes channels from Flax
parameter trees.
"""

import dataclasses
import os

import jax
import numpy as np
from absl import logging
from flax import traverse_util

from research import workdir as workdir_lib
from research.compress.method import Method
from research.errors import UserError
from research.models import transformer

CRITERIA = ("bn_scale", "l1", "l2")


TRANSFORMERS = ("lm", "transformer", "vit")
# A Transformer block's parameters that hold its heads or units, and on which axis.
HEAD_AXES = {("attention", "query", "kernel"): 1, ("attention", "key", "kernel"): 1,
             ("attention", "value", "kernel"): 1, ("attention", "query", "bias"): 0,
             ("attention", "key", "bias"): 0, ("attention", "value", "bias"): 0,
             ("attention", "out", "kernel"): 0}
UNIT_AXES = {("mlp_in", "kernel"): 1, ("mlp_in", "bias"): 0, ("mlp_out", "kernel"): 0}


@dataclasses.dataclass(frozen=True)
class Layer:
    """A layer whose output channels can be removed: the module holding its kernel (channels on
    the last axis) and the BatchNorm module after it, if any; or (`kind` heads or units) a
    Transformer block, by its path in the parameters, whose heads or MLP units can be."""

    module: str
    norm: str | None = None
    kind: str = "channels"


def layers(model_config) -> tuple[list[Layer], str]:
    """The layers of `model_config`'s family whose channels can be removed, in forward order,
    and the output layer (whose inputs follow the last of them)."""
    if model_config.name == "cnn":
        convs = [Layer(f"Conv_{i}", f"BatchNorm_{i}" if model_config.batch_norm else None)
                 for i in range(len(model_config.conv_features))]
        dense = [Layer(f"Dense_{j}") for j in range(len(model_config.dense_sizes))]
        return convs + dense, f"Dense_{len(model_config.dense_sizes)}"
    if model_config.name == "mlp":
        if model_config.residual:
            raise UserError("shrink: an MLP with residual=True ties each layer's channels to its input's; "
                            "shrink serves MLPs without it")
        hidden = [Layer(f"Dense_{j}") for j in range(len(model_config.hidden_sizes))]
        return hidden, f"Dense_{len(model_config.hidden_sizes)}"
    if model_config.name in TRANSFORMERS:
        trunk = "trunk/" if model_config.name != "vit" else ""
        blocks = [f"{trunk}block_{i}" for i in range(model_config.depth)]
        return [Layer(block, kind=kind) for block in blocks for kind in ("heads", "units")], None
    raise UserError(f"shrink: model {model_config.name!r} is not one shrink can narrow; it narrows cnn, "
                    f"mlp and {', '.join(TRANSFORMERS)}")


def widths(model_config) -> list[int]:
    """Each layer's output channels (a block's heads and units), in the order of `layers`."""
    if model_config.name == "cnn":
        return [*model_config.conv_features, *model_config.dense_sizes]
    if model_config.name in TRANSFORMERS:
        return [model_config.heads, model_config.mlp_dim] * model_config.depth
    return list(model_config.hidden_sizes)


def head_width(model_config) -> int:
    return model_config.get("head_dim", 0) or model_config.hidden // model_config.heads


def _block_weights(flat: dict, layer: Layer, axes: dict):
    """("/"-joined path, axis) of each parameter of `axes` that `layer`'s block holds in `flat`
    (parameters by path): what scores and narrowing read of a block."""
    for path, axis in axes.items():
        key = "/".join((layer.module, *path))
        if key in flat:
            yield key, axis


def scores(params: dict, layer: Layer, criterion: str) -> np.ndarray:
    """One score per output channel of `layer` (higher: kept first)."""
    check_criterion(criterion)
    if criterion == "bn_scale" and layer.norm is not None:
        return np.abs(np.asarray(params[layer.norm]["scale"], np.float64))
    if layer.kind == "channels":
        kernel = np.asarray(params[layer.module]["kernel"], np.float64)
        weights = [kernel.reshape(-1, kernel.shape[-1])]
    else:
        flat = traverse_util.flatten_dict(params, sep="/")
        parts = HEAD_AXES if layer.kind == "heads" else {("mlp_in", "kernel"): 1}
        weights = [np.moveaxis(np.asarray(flat[key], np.float64), axis, -1)
                   for key, axis in _block_weights(flat, layer, parts)]
        weights = [w.reshape(-1, w.shape[-1]) for w in weights]
    if criterion == "l2":
        return np.sqrt(sum((w ** 2).sum(0) for w in weights))
    return sum(np.abs(w).sum(0) for w in weights)


def check_criterion(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise UserError(f"shrink.criterion={criterion!r}; choose one of {list(CRITERIA)}")


def kept_channels(score: np.ndarray, count: int) -> np.ndarray:
    """The indices of the `count` highest scores, in increasing order (ties: the lower index)."""
    return np.sort(np.argsort(-score, kind="stable")[:count])


def _take_inputs(kernel: np.ndarray, keep: np.ndarray, channels: int) -> np.ndarray:
    """`kernel` reading only the input channels `keep` of the `channels` it read. A convolution's
    kernel holds them on its input axis; a dense layer after a flatten holds `channels` rows per
    spatial position, channel fastest (a [H, W, C] map flattened in row-major order)."""
    axis = kernel.ndim - 2
    if kernel.shape[axis] == channels:
        return np.take(kernel, keep, axis=axis)
    positions, remainder = divmod(kernel.shape[0], channels)
    if kernel.ndim != 2 or remainder:
        raise UserError(f"shrink: a kernel of shape {kernel.shape} does not read {channels} channels")
    return kernel.reshape(positions, channels, -1)[:, keep].reshape(positions * len(keep), -1)


def narrow(variables: dict, chain: list[Layer], output: str, kept: list[np.ndarray]) -> dict:
    """`variables` ({"params": ..., "batch_stats": ...}, host arrays) with only the channels
    `kept[i]` of `chain[i]`, and every weight reading a removed one dropped."""
    if chain and chain[0].kind != "channels":
        return _narrow_blocks(variables, chain, kept)
    params = {name: dict(module) for name, module in variables["params"].items()}
    stats = {name: dict(module) for name, module in variables.get("batch_stats", {}).items()}
    reading = None  # (kept indices, channel count) of the layer feeding the next.
    for layer, keep in zip(chain, kept, strict=True):
        module = params[layer.module]
        if reading is not None:
            module["kernel"] = _take_inputs(module["kernel"], *reading)
        channels = module["kernel"].shape[-1]
        module["kernel"] = module["kernel"][..., keep]
        if "bias" in module:
            module["bias"] = module["bias"][keep]
        if layer.norm is not None:
            params[layer.norm] = {name: value[keep] for name, value in params[layer.norm].items()}
            if layer.norm in stats:
                stats[layer.norm] = {name: value[keep] for name, value in stats[layer.norm].items()}
        reading = (keep, channels)
    params[output] = {**params[output], "kernel": _take_inputs(params[output]["kernel"], *reading)}
    return {"params": params, **({"batch_stats": stats} if stats else {})}


def _narrow_blocks(variables: dict, chain: list[Layer], kept: list[np.ndarray]) -> dict:
    """Transformer blocks with only the heads or units `kept[i]` of `chain[i]`: each weight
    holding them taken on its heads or units axis; the stream's weights stay."""
    flat = traverse_util.flatten_dict(variables["params"], sep="/")
    for layer, keep in zip(chain, kept, strict=True):
        for key, axis in _block_weights(flat, layer, HEAD_AXES if layer.kind == "heads" else UNIT_AXES):
            flat[key] = np.take(flat[key], keep, axis=axis)
    return {**variables, "params": traverse_util.unflatten_dict(flat, sep="/")}


def choose(source_params: dict, source_model, model_config, criterion: str) -> tuple[list[Layer], str, list]:
    """The layers of the source model, its output layer and, for each layer, the channels the
    narrower `model_config` keeps under `criterion`."""
    chain, output = check(source_model, model_config)
    kept = [kept_channels(scores(source_params, layer, criterion), n)
            for layer, n in zip(chain, widths(model_config), strict=True)]
    return chain, output, kept


def check(source_model, model_config) -> tuple[list[Layer], str]:
    """The source's layers and output layer, once `model_config` is seen to be a narrowing of
    `source_model` (the same family, one width per layer, none wider)."""
    if model_config.name != source_model.name:
        raise UserError(f"shrink: this run's model is {model_config.name!r} but the source's is "
                        f"{source_model.name!r}; shrink narrows a model of the same family")
    chain, output = layers(source_model)
    if source_model.name in TRANSFORMERS:
        if model_config.hidden != source_model.hidden or model_config.depth != source_model.depth:
            raise UserError(f"shrink: the source has hidden={source_model.hidden}, "
                            f"depth={source_model.depth}; this run must keep both (shrink removes heads and "
                            "MLP units)")
        if head_width(model_config) != head_width(source_model):
            raise UserError(f"shrink: the source's heads are {head_width(source_model)} wide; set "
                            f"--config.model.head_dim={head_width(source_model)} to keep them whole")
    wide, narrow_widths = widths(source_model), widths(model_config)
    one_per_layer = len(wide) == len(narrow_widths)
    if not one_per_layer or not all(1 <= n <= w for n, w in zip(narrow_widths, wide, strict=True)):
        raise UserError(f"shrink: this run's widths {narrow_widths} must be one per layer of the source's "
                        f"{wide}, each from 1 to the source's")
    return chain, output


def start(shrink_config, model_config, load_variables, target: dict) -> dict:
    """The variables ({"params": ..., "model_state": ...}, host arrays shaped as `target`'s
    leaves) this run starts from: the source run's, narrowed to this run's widths."""
    source_config = source_run_config(shrink_config.source)
    step, variables = load_variables(shrink_config.source, shrink_config.checkpoint)
    # Narrowed a block at a time (block_0 ...), whether the source scanned its blocks or not.
    variables = traverse_util.unflatten_dict(transformer.unrolled_blocks(
        traverse_util.flatten_dict(jax.tree.map(np.asarray, variables), sep="/")), sep="/")
    chain, output, kept = choose(variables["params"], source_config.model, model_config,
                                 shrink_config.criterion)
    narrowed = narrow(variables, chain, output, kept)
    for layer, keep in zip(chain, kept, strict=True):
        by = shrink_config.criterion if layer.norm or shrink_config.criterion != "bn_scale" else "l1"
        logging.info("shrink: %s keeps %d %s by %s: %s", layer.module, len(keep), layer.kind, by,
                     keep.tolist())
    start_variables = {"params": narrowed.pop("params"), "model_state": narrowed}
    wanted = traverse_util.flatten_dict(target, sep="/")
    got = transformer.match_block_layout(traverse_util.flatten_dict(start_variables, sep="/"), wanted)
    if set(wanted) != set(got):
        raise UserError(f"shrink: the source {shrink_config.source} (step {step}) and this model differ in "
                        f"more than widths: parts only here {sorted(set(wanted) - set(got))[:4]}, only there "
                        f"{sorted(set(got) - set(wanted))[:4]}")
    for path, leaf in wanted.items():
        if np.shape(got[path]) != tuple(leaf.shape):
            raise UserError(f"shrink: {path} narrows to {np.shape(got[path])} from {shrink_config.source} "
                            f"(step {step}) but this model has {tuple(leaf.shape)}: the two differ in more "
                            "than widths (kernel size, inputs or classes)")
    logging.info("shrink: started from %s step %d", shrink_config.source, step)
    return traverse_util.unflatten_dict(got, sep="/")


def source_run_config(workdir: str):
    if not os.path.exists(os.path.join(workdir, "config.json")):
        raise UserError(f"shrink.source: {workdir} is not the workdir of a run (no config.json)")
    return workdir_lib.load_config(workdir)


@dataclasses.dataclass(frozen=True)
class ShrinkMethod(Method):
    """`shrink.source` set: the run starts from the source's weights of the channels it keeps."""

    name: str = "shrink"
    vectorizable: bool = True  # Every stacked run starts from the same narrowed weights.

    def selected(self, config) -> bool:
        return bool(config.shrink.source)

    def apply(self, config, parts, context):
        check_criterion(config.shrink.criterion)
        # The source is read when the run trains (`initial_variables`), not here: a shrunk run
        # evaluates, exports and serves without it.
        return parts

    def starts_from(self, config) -> str:
        return config.shrink.source

    def initial_variables(self, config, context, target: dict) -> dict:
        return start(config.shrink, config.model, context.load_variables, target)


METHOD = ShrinkMethod()
