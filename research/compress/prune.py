"""Magnitude pruning with the gradual schedule of Zhu & Gupta (2017), "To prune, or not to
prune" (`config.prune.target_sparsity` above 0).

The pruned parameters are those whose path matches `prune.params` (by default every Dense,
Conv and attention kernel; embeddings, biases and norms stay dense). Pruning is the last
gradient transformation of the optimizer's chain (`masked`): its state holds the 0/1 masks (a
subtree of the params, laid out like them) and the update count, so they are checkpointed with
the optimizer state and a resumed run prunes exactly as an uninterrupted one. Every `prune.every`
steps from `start_step` to `end_step`, the masks keep the largest-magnitude weights so that
the sparsity is

    s_t = s_f * (1 - (1 - (t - start) / (end - start))^3)

(s_f the target): fast at first, while there are many redundant weights, then slower. Scope
`layer` prunes each tensor to s_t; `global` ranks all of them together, so layers end with
different sparsities. Masks are applied to every update (the optimizer's moments are left
alone): a pruned weight's update takes it to exactly zero, where it stays. Logged:
`train/sparsity`; results.json gets each tensor's sparsity and the count of non-zero parameters.

Written here because Optax has no gradual magnitude pruning (its `optax.contrib` sparsity
tools are for other schedules).
"""

import dataclasses
import re
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from research import optim
from research.compress.method import Method
from research.errors import UserError

SCOPES = ("layer", "global")


@dataclasses.dataclass(frozen=True)
class Pruning:
    target: float
    start_step: int
    end_step: int
    every: int
    scope: str
    pattern: str

    @classmethod
    def from_config(cls, prune_config, total_steps: int) -> "Pruning | None":
        """None when `prune.target_sparsity` is 0; `end_step` 0 is three quarters of training,
        leaving the last quarter to recover from the last pruning."""
        if not prune_config.target_sparsity:
            return None
        end = prune_config.end_step or int(0.75 * total_steps)
        pruning = cls(float(prune_config.target_sparsity), int(prune_config.start_step), end,
                      int(prune_config.every), prune_config.scope, prune_config.params)
        if not 0.0 < pruning.target < 1.0:
            raise UserError(f"prune.target_sparsity={pruning.target}; it is a fraction in [0, 1)")
        if pruning.scope not in SCOPES:
            raise UserError(f"prune.scope={pruning.scope!r}; choose one of {list(SCOPES)}")
        if pruning.every < 1 or not 0 <= pruning.start_step < pruning.end_step <= total_steps:
            raise UserError(f"prune needs 0 <= start_step < end_step <= the run's {total_steps} steps and "
                            f"every >= 1 (start_step={pruning.start_step}, end_step={pruning.end_step}, "
                            f"every={pruning.every})")
        return pruning

    def selected(self, params) -> dict:
        """The flattened {path: param} of the params this pruning masks."""
        chosen = {path: p for path, p in traverse_util.flatten_dict(params, sep="/").items()
                  if re.search(self.pattern, path)}
        if not chosen:
            raise UserError(f"prune.params={self.pattern!r} matches no parameter")
        return chosen

    def initial_masks(self, params) -> dict:
        return traverse_util.unflatten_dict(
            {path: jnp.ones(p.shape, bool) for path, p in self.selected(params).items()}, sep="/")

    def sparsity_at(self, step: jax.Array) -> jax.Array:
        progress = jnp.clip((step - self.start_step) / (self.end_step - self.start_step), 0.0, 1.0)
        return self.target * (1.0 - (1.0 - progress) ** 3)

    def updates_at(self, step: jax.Array) -> jax.Array:
        """Whether the masks are recomputed after the update that makes the count `step`."""
        in_range = (step >= self.start_step) & (step <= self.end_step)
        return in_range & (((step - self.start_step) % self.every == 0) | (step == self.end_step))

    def new_masks(self, params, sparsity: jax.Array) -> dict:
        """Masks keeping the largest |w|: the smallest `sparsity` fraction of each tensor
        (layer) or of all of them together (global) is zeroed. Ranks, not a threshold, so ties
        cannot prune more than the fraction."""
        selected = self.selected(params)
        magnitudes = {path: jnp.abs(p.astype(jnp.float32)).reshape(-1) for path, p in selected.items()}
        if self.scope == "layer":
            masks = {path: _keep_largest(m, sparsity).reshape(selected[path].shape)
                     for path, m in magnitudes.items()}
        else:
            flat = jnp.concatenate(list(magnitudes.values()))
            keep = _keep_largest(flat, sparsity)
            offsets = np.cumsum([0] + [m.size for m in magnitudes.values()])
            masks = {path: keep[offsets[i]:offsets[i + 1]].reshape(selected[path].shape)
                     for i, path in enumerate(magnitudes)}
        return traverse_util.unflatten_dict(masks, sep="/")

    def masked(self) -> optax.GradientTransformation:
        """The transformation that prunes: chained after the optimizer's, it recomputes the
        masks from the updated params when the schedule says and turns each pruned weight's
        update into the one that zeroes it."""

        def init(params) -> PruneState:
            return PruneState(count=jnp.zeros((), jnp.int32), masks=self.initial_masks(params))

        def update(updates, state: PruneState, params):
            step = state.count + 1  # The update this one makes the count of.
            updated = optax.apply_updates(params, updates)  # The params the masks are ranked on.
            masks = jax.lax.cond(self.updates_at(step),
                                 lambda: self.new_masks(updated, self.sparsity_at(step)), lambda: state.masks)
            flat_masks = traverse_util.flatten_dict(masks, sep="/")
            flat_params = traverse_util.flatten_dict(params, sep="/")
            flat_updates = {
                path: jnp.where(flat_masks[path], u, -flat_params[path]) if path in flat_masks else u
                for path, u in traverse_util.flatten_dict(updates, sep="/").items()}
            return traverse_util.unflatten_dict(flat_updates, sep="/"), PruneState(count=step, masks=masks)

        return optax.GradientTransformation(init, update)


@flax.struct.dataclass
class PruneState(optim.ReportsMetrics):
    """The pruning transformation's state: updates made, and the masks (True: kept)."""

    count: jax.Array
    masks: Any

    def train_metrics(self) -> dict:
        """The sparsity of the pruned tensors."""
        flat_masks = jax.tree.leaves(self.masks)
        kept = sum(m.sum() for m in flat_masks)
        total = sum(m.size for m in flat_masks)
        return {"sparsity": 1.0 - kept / total}


def _keep_largest(magnitudes: jax.Array, sparsity: jax.Array) -> jax.Array:
    pruned = jnp.floor(sparsity * magnitudes.size).astype(jnp.int32)
    ranks = jnp.argsort(jnp.argsort(magnitudes, stable=True), stable=True)  # 0: the smallest.
    return ranks >= pruned


def masks_of(opt_state) -> dict:
    """The masks of the pruning transformation's state within `opt_state`."""
    (state,) = [leaf for leaf in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, PruneState))
                if isinstance(leaf, PruneState)]
    return state.masks


def report(params, masks) -> dict:
    """Each pruned tensor's sparsity and the counts of parameters and non-zero ones (host)."""
    flat = traverse_util.flatten_dict(jax.device_get(params), sep="/")
    per_tensor = {path: float(1.0 - np.count_nonzero(m) / m.size)
                  for path, m in traverse_util.flatten_dict(jax.device_get(masks), sep="/").items()}
    total = sum(int(np.size(p)) for p in flat.values())
    nonzero = sum(int(np.count_nonzero(p)) for p in flat.values())
    return {"sparsity": per_tensor, "params": total, "nonzero_params": nonzero}


@dataclasses.dataclass(frozen=True)
class PruneMethod(Method):
    """`prune.target_sparsity` above 0: the optimizer's updates pass through `Pruning.masked`."""

    name: str = "prune"
    vectorizable: bool = False  # Masks ranked per run: not written for stacked runs.

    def selected(self, config) -> bool:
        return bool(config.prune.target_sparsity)

    def apply(self, config, parts, context):
        pruning = Pruning.from_config(config.prune, context.total_steps)
        return dataclasses.replace(parts, tx=optax.chain(parts.tx, pruning.masked()))

    def report(self, params, opt_state) -> dict:
        return {"pruning": report(params, masks_of(opt_state))}


METHOD = PruneMethod()
