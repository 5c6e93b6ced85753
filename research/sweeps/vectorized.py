"""Vectorized sweeps: runs that differ only in seed and numeric optimizer hyperparameters
train together, one jitted step `jax.vmap`ped over their stacked train states, each run with
its own data order. Small models leave most of a CPU or accelerator idle; K runs in one step
fill it.

What is particular to a group is built here (the stacked state, the vmapped steps, the stacked
batches); the group then trains through the same loop as a single run
(research.train.loop), so it resumes, logs and writes each run's files the same way. The
group checkpoints to `<sweep_dir>/_vectorized/`; each run's workdir also gets its final
checkpoint, so evaluate, init_from and reproduce read it like any run's.
"""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from research import compress, optim
from research import config as config_lib
from research import workdir as workdir_lib
from research.data import pipeline
from research.errors import UserError
from research.parallel import sharding
from research.run import checkpoint
from research.run.experiment import build, example_batch
from research.train import loop, steps
from research.train.state import init_state

VECTORIZABLE = {"seed", *(f"opt.{name}" for name in optim.NUMERIC_FIELDS)}


def swept_optimizer_fields(runs) -> list[str]:
    """The optimizer fields the runs differ in; an error when they differ in anything that is
    not a number of the optimizer or the seed."""
    keys = list(dict.fromkeys(key for run in runs for key in run.overrides))
    others = sorted(set(keys) - VECTORIZABLE)
    if others:
        raise UserError(f"--vectorize needs runs that differ only in {sorted(VECTORIZABLE)}; "
                        f"this sweep also varies {others}: run it without --vectorize")
    return [key.removeprefix("opt.") for key in keys if key != "seed"]


class StackedBatches:
    """The runs' training iterators as one: each batch is theirs stacked along a leading axis.
    Checkpointed through Grain's handler (get_state/set_state as bytes) like one iterator."""

    def __init__(self, iterators):
        self.iterators = iterators

    def __next__(self) -> dict:
        return pipeline.stack([next(it) for it in self.iterators])

    def get_state(self) -> bytes:
        return json.dumps([it.get_state() for it in self.iterators]).encode()

    def set_state(self, state: bytes) -> None:
        for it, position in zip(self.iterators, json.loads(state), strict=True):
            it.set_state(position)

    def start_prefetch(self) -> None:  # Grain's handler calls it after a restore.
        pass


class StackedGroup(loop.Group):
    """The runs of a vectorized group: their states, batches and metrics carry one entry per
    run on a leading axis. Their checkpoint serves resumes only (no best, and the sweep's
    directory, not one workdir, is the group's); each run's checkpoint is written when it
    finishes; no profile and no prediction plot."""

    def split(self, tree, axis: int = 0) -> list:
        tree = jax.device_get(tree)  # Host arrays: NumPy's take (jax.Array.take has no mode="raise").
        return [jax.tree.map(lambda x: np.take(x, k, axis=axis), tree) for k in range(len(self.workdirs))]  # noqa: B023

    def session_fields(self) -> dict:
        return {"vectorized_with": len(self.workdirs)}

    def profile_steps(self, train_config) -> str:
        return ""

    def best_metric(self, train_config) -> str:
        return ""

    def removed_message(self) -> str:
        return ""

    def finished(self, experiment, state) -> None:
        pass


def train_group(runs, base_config, sweep_dir: str, status, stop, progress) -> None:
    """Trains `runs` (of one sweep, differing only in VECTORIZABLE fields) as one group."""
    if base_config.train.get("early_stop_patience"):
        raise UserError("train.early_stop_patience stops a run on its own metric, and a vectorized group "
                        "trains its runs together: run this sweep without --vectorize")
    for method in compress.selected(base_config):
        if not method.vectorizable:
            raise UserError(f"config.{method.name} selects a compression method that vectorized groups do "
                            "not support: run this sweep without --vectorize")
    swept = swept_optimizer_fields(runs)
    configs = [config_lib.apply_overrides(base_config, run.overrides) for run in runs]
    experiment = build(base_config)
    # The optimizer's structure (which transforms are chained) from the largest value of each
    # swept number; the numbers themselves are per run.
    static_opt = ml_collections.ConfigDict(base_config.opt)
    for name in swept:
        static_opt[name] = max(config.opt[name] for config in configs)
    numbers = {name: jnp.asarray([c.opt[name] for c in configs], jnp.float32) for name in swept}
    seeds = jnp.asarray([c.seed for c in configs], jnp.int32)
    tx, _ = optim.make_optimizer(static_opt, experiment.total_steps)
    example = example_batch(experiment)
    state = jax.jit(jax.vmap(lambda seed: init_state(experiment.model, tx, example, seed)),
                    out_shardings=sharding.replicated(experiment.mesh))(seeds)

    def train_one(numbers, seed, state, batch):
        tx, schedule = optim.make_optimizer(static_opt, experiment.total_steps, numbers)
        return steps.make_train_step(experiment.model, tx, schedule, seed, experiment.task, experiment.loss,
                                     experiment.grad_accum_steps)(state, batch)

    def group_train_step(state, batch):
        return jax.vmap(train_one)(numbers, seeds, state, batch)

    group_eval_step = jax.vmap(steps.make_eval_step(experiment.model, experiment.task), in_axes=(0, None))
    group_steps = steps.jit_group_steps(experiment.mesh, state, group_train_step, group_eval_step,
                                  base_config.train.steps_per_call)
    iterators = [pipeline.train_batches(experiment.train_data.arrays, batch_size=c.data.batch_size,
                                        seed=c.seed, augment=experiment.augment) for c in configs]
    group = StackedGroup([run.workdir for run in runs], configs,
                         os.path.join(sweep_dir, "_vectorized", "checkpoints"), leading_axes=1)
    for run in runs:
        status.update(run.name, status="running", vectorized_with=len(runs))
    results, state = loop.train(base_config, experiment, group, state, group_steps,
                                StackedBatches(iterators), stop)
    for k, (run, result) in enumerate(zip(runs, results, strict=True)):
        if result["status"] == "finished":
            run_checkpoints = checkpoint.Checkpoints(os.path.join(run.workdir, "checkpoints"))
            run_checkpoints.save(result["step"], jax.tree.map(lambda x: x[k], state),  # noqa: B023
                                 data_iterator=iterators[k], loop_state=loop.Progress.fresh(1).to_json())
            run_checkpoints.close()
            status.update(run.name, status="finished", returncode=0, ended=workdir_lib.now())
        elif result["status"] == "failed":
            status.update(run.name, status="failed", returncode=None, log_tail=result["message"])
        else:
            status.update(run.name, status="stopped")
        if result["status"] != "stopped":
            progress.update(1)
