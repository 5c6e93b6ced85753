"""Optax optimizer and learning-rate schedule from `config.opt`."""

import jax
import optax

from research.errors import UserError

SCHEDULES = ("constant", "cosine", "linear")
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")


def make_schedule(opt_config, total_steps: int) -> optax.Schedule:
    """Linear warmup from 0 over `warmup_steps`, then constant, cosine or linear decay to
    `lr * end_lr_factor` at `total_steps`."""
    lr, warmup = opt_config.lr, opt_config.warmup_steps
    end_lr = lr * opt_config.end_lr_factor
    decay_steps = max(total_steps - warmup, 1)
    if opt_config.schedule == "constant":
        after = optax.constant_schedule(lr)
    elif opt_config.schedule == "cosine":
        after = optax.cosine_decay_schedule(lr, decay_steps, alpha=opt_config.end_lr_factor)
    elif opt_config.schedule == "linear":
        after = optax.linear_schedule(lr, end_lr, decay_steps)
    else:
        raise UserError(f"unknown opt.schedule {opt_config.schedule!r}; choose one of {SCHEDULES}")
    if warmup <= 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), after], [warmup])


def _decay_kernels_only(params):
    """Weight decay applies to weight matrices and kernels, not to biases or norm scales."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(opt_config, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    schedule = make_schedule(opt_config, total_steps)
    name, weight_decay = opt_config.name, opt_config.weight_decay
    if name == "sgd":
        update = optax.sgd(schedule)
    elif name == "momentum":
        update = optax.sgd(schedule, momentum=opt_config.momentum, nesterov=opt_config.nesterov)
    elif name == "adam":
        update = optax.adam(schedule, b1=opt_config.b1, b2=opt_config.b2, eps=opt_config.eps)
    elif name == "adamw":
        update = optax.adamw(
            schedule, b1=opt_config.b1, b2=opt_config.b2, eps=opt_config.eps,
            weight_decay=weight_decay, mask=_decay_kernels_only)
    else:
        raise UserError(f"unknown opt.name {name!r}; choose one of {OPTIMIZERS}")
    chain = []
    if opt_config.clip_norm > 0:
        chain.append(optax.clip_by_global_norm(opt_config.clip_norm))
    if weight_decay > 0 and name != "adamw":
        # Coupled L2 decay (added to the gradient) for sgd/momentum/adam; adamw decouples it.
        chain.append(optax.add_decayed_weights(weight_decay, mask=_decay_kernels_only))
    chain.append(update)
    return optax.chain(*chain), schedule
