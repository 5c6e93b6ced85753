"""Optax optimizer and learning-rate schedule from `config.opt`."""

import jax
import optax

from research.errors import UserError

SCHEDULES = ("constant", "cosine", "linear")
# Fields that enter the update only as numbers: they may be traced (one value per vmapped run).
NUMERIC_FIELDS = ("lr", "end_lr_factor", "weight_decay", "clip_norm", "momentum", "b1", "b2", "eps")


def _numbers(opt_config, numbers: dict | None) -> dict:
    return {**{name: opt_config[name] for name in NUMERIC_FIELDS}, **(numbers or {})}


def make_schedule(opt_config, total_steps: int, numbers: dict | None = None) -> optax.Schedule:
    """Linear warmup from 0 over `warmup_steps`, then constant, cosine or linear decay to
    `lr * end_lr_factor` at `total_steps`."""
    values = _numbers(opt_config, numbers)
    lr, end_lr_factor, warmup = values["lr"], values["end_lr_factor"], opt_config.warmup_steps
    decay_steps = max(total_steps - warmup, 1)
    if opt_config.schedule == "constant":
        after = optax.constant_schedule(lr)
    elif opt_config.schedule == "cosine":
        after = optax.cosine_decay_schedule(lr, decay_steps, alpha=end_lr_factor)
    elif opt_config.schedule == "linear":
        after = optax.linear_schedule(lr, lr * end_lr_factor, decay_steps)
    else:
        raise UserError(f"unknown opt.schedule {opt_config.schedule!r}; choose one of {SCHEDULES}")
    if warmup <= 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), after], [warmup])


# Optimizers by `opt.name`: (schedule, numbers, opt_config) -> the update transformation.
# Clipping and weight decay are chained around it by make_optimizer; a new optimizer is one
# entry here (its numeric fields, if new, go in NUMERIC_FIELDS and configs/common.py).
OPTIMIZERS = {
    "sgd": lambda schedule, values, opt_config: optax.sgd(schedule),
    "momentum": lambda schedule, values, opt_config: optax.sgd(
        schedule, momentum=values["momentum"], nesterov=opt_config.nesterov),
    "adam": lambda schedule, values, opt_config: optax.adam(
        schedule, b1=values["b1"], b2=values["b2"], eps=values["eps"]),
    "adamw": lambda schedule, values, opt_config: optax.adamw(
        schedule, b1=values["b1"], b2=values["b2"], eps=values["eps"],
        weight_decay=values["weight_decay"], mask=_decay_kernels_only),
}


class ReportsMetrics:
    """Base of an optimizer-state entry that has train metrics to log (a pruning
    transformation's sparsity): the step logs them without knowing what made them."""

    def train_metrics(self) -> dict:
        raise NotImplementedError


def state_metrics(opt_state) -> dict:
    """The train metrics of every entry of `opt_state` that reports some."""
    out = {}
    for leaf in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, ReportsMetrics)):
        if isinstance(leaf, ReportsMetrics):
            out.update(leaf.train_metrics())
    return out


def _decay_kernels_only(params):
    """Weight decay applies to weight matrices and kernels, not to biases or norm scales."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(opt_config, total_steps: int,
                   numbers: dict | None = None) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optimizer and its schedule. `opt_config` decides the structure (which transforms
    are chained); `numbers`, if given, replaces its NUMERIC_FIELDS' values, e.g. with traced
    per-run values under jax.vmap. The state's structure does not depend on `numbers`."""
    values = _numbers(opt_config, numbers)
    schedule = make_schedule(opt_config, total_steps, numbers)
    name = opt_config.name
    if name not in OPTIMIZERS:
        raise UserError(f"unknown opt.name {name!r}; choose one of {sorted(OPTIMIZERS)}")
    update = OPTIMIZERS[name](schedule, values, opt_config)
    chain = []
    if opt_config.clip_norm > 0:
        chain.append(optax.clip_by_global_norm(values["clip_norm"]))
    if opt_config.weight_decay > 0 and name != "adamw":
        # Coupled L2 decay (added to the gradient) for sgd/momentum/adam; adamw decouples it.
        chain.append(optax.add_decayed_weights(values["weight_decay"], mask=_decay_kernels_only))
    chain.append(update)
    return optax.chain(*chain), schedule
