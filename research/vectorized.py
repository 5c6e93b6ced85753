"""Vectorized sweeps: runs that differ only in seed and numeric optimizer hyperparameters
train together, one jitted step `jax.vmap`ped over their stacked train states, each run with
its own data order. Small models leave most of a CPU or accelerator idle; K runs in one step
fill it.

The group checkpoints to `<sweep_dir>/_vectorized/` (stacked state, every run's data
position and unlogged metrics), so a killed vectorized sweep resumes like a single run. Each
run's own workdir gets the files of an ordinary run: config.json, manifest.json,
metrics.jsonl, TensorBoard events, results.json, plots and its final checkpoint.
"""

import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from research import checkpoint, evaluation, metrics, optim, sharding, steps
from research import config as config_lib
from research import logging as metric_logging
from research import workdir as workdir_lib
from research.data import pipeline, text
from research.errors import UserError
from research.experiment import build, example_batch, intervals
from research.inflight import InFlight
from research.state import init_state

VECTORIZABLE = {"seed", *(f"opt.{name}" for name in optim.NUMERIC_FIELDS)}


def _check(runs) -> list[str]:
    keys = list(dict.fromkeys(key for run in runs for key in run.overrides))
    others = sorted(set(keys) - VECTORIZABLE)
    if others:
        raise UserError(f"--vectorize needs runs that differ only in {sorted(VECTORIZABLE)}; "
                        f"this sweep also varies {others}: run it without --vectorize")
    return [key.removeprefix("opt.") for key in keys if key != "seed"]


def _group_steps(experiment, static_opt, model):
    """train and eval steps over stacked states; per-run numbers and seeds are traced."""

    def train_one(numbers, seed, state, batch):
        tx, schedule = optim.make_optimizer(static_opt, experiment.total_steps, numbers)
        return steps.make_train_step(model, tx, schedule, seed, experiment.task)(state, batch)

    eval_one = steps.make_eval_step(model, experiment.task)
    return (jax.jit(jax.vmap(train_one), donate_argnums=2),
            jax.jit(jax.vmap(eval_one, in_axes=(0, None))))


def train_group(runs, base_config, sweep_dir: str, status, stop, progress) -> None:
    swept_opt = _check(runs)
    if base_config.init_from:
        raise UserError("--vectorize does not start runs from init_from; run this sweep without --vectorize")
    configs = [config_lib.apply_overrides(base_config, run.overrides) for run in runs]
    experiment = build(base_config)
    model, mesh, total_steps = experiment.model, experiment.mesh, experiment.total_steps
    # Structure (which transforms are chained) from the largest value of each swept number.
    static_opt = ml_collections.ConfigDict(base_config.opt)
    for name in swept_opt:
        static_opt[name] = max(config.opt[name] for config in configs)
    numbers = {name: jnp.asarray([c.opt[name] for c in configs], jnp.float32) for name in swept_opt}
    seeds = jnp.asarray([c.seed for c in configs], jnp.int32)
    tx, _ = optim.make_optimizer(static_opt, total_steps)
    example = example_batch(experiment)
    states = jax.jit(jax.vmap(lambda seed: init_state(model, tx, example, seed)),
                     out_shardings=sharding.replicated(mesh))(seeds)
    group_train_step, group_eval_step = _group_steps(experiment, static_opt, model)

    iterators = [pipeline.train_batches(experiment.train_data.arrays, batch_size=c.data.batch_size,
                                        seed=c.seed, augment=experiment.augment) for c in configs]
    group_checkpoints = checkpoint.Checkpoints(
        os.path.join(sweep_dir, "_vectorized", "checkpoints"), keep=1)
    restored = group_checkpoints.restore_latest_good(checkpoint.abstract_like(states))
    pending, diverged = [[] for _ in runs], [None] * len(runs)
    if restored is not None:
        states, loop = restored.state, restored.loop_state
        for iterator, position in zip(iterators, loop["data"], strict=True):
            iterator.set_state(position)
        pending, diverged = loop["pending_train_metrics"], loop["diverged"]
    start_step = int(states.step[0])
    started = workdir_lib.now()
    for run, config in zip(runs, configs, strict=True):
        workdir_lib.prepare(run.workdir, config.to_dict())
        if experiment.tokenizer_file:
            text.save_with_run(experiment.tokenizer_file, run.workdir)
        status.update(run.name, status="running", started=started, vectorized_with=len(runs))
    writers = [metric_logging.MetricWriter(run.workdir, start_step) for run in runs]
    log_every, eval_every, checkpoint_every = intervals(base_config.train, experiment.steps_per_epoch)
    batch_size, split_name = base_config.data.batch_size, base_config.eval.split
    wall_start = window_start = time.time()
    window_steps, last_eval = 0, {}

    def flush(step: int) -> None:
        """Moves the device metrics since the last flush into each run's pending list; a run
        whose metrics turn non-finite is marked diverged and logs nothing more."""
        nonlocal device_pending
        for host in jax.device_get(device_pending):
            for k in range(len(runs)):
                pending[k].append({name: float(values[k]) for name, values in host.items()})
        device_pending = []
        for k, run_pending in enumerate(pending):
            if diverged[k] is None and any(not np.isfinite(v) for m in run_pending for v in m.values()):
                diverged[k] = step

    def log(step: int) -> None:
        nonlocal window_start, window_steps
        flush(step)
        rate = window_steps * batch_size / (time.time() - window_start)
        for k, writer in enumerate(writers):
            if diverged[k] is None and pending[k]:
                train = metrics.mean_over_steps(pending[k])
                writer.write(step, {**{f"train/{n}": v for n, v in train.items()},
                                    "perf/examples_per_sec": rate,
                                    "epoch": step / experiment.steps_per_epoch})
            pending[k] = []
        window_start, window_steps = time.time(), 0

    def evaluate(step: int) -> None:
        totals = evaluation.accumulate(group_eval_step, states, experiment.eval_data,
                                       batch_size=base_config.eval.batch_size, mesh=mesh)
        for k, writer in enumerate(writers):
            if diverged[k] is None:
                summary, confusion = experiment.task.summarize(jax.tree.map(lambda x: x[k], totals))  # noqa: B023
                last_eval[k] = (step, summary, confusion)
                writer.write(step, evaluation.named(summary, split_name))

    device_pending, step, in_flight = [], start_step, InFlight()
    while step < total_steps and stop.signum is None:
        run_batches = [next(iterator) for iterator in iterators]
        batch_KxB = {name: np.stack([b[name] for b in run_batches]) for name in run_batches[0]}
        states, step_metrics = group_train_step(numbers, seeds, states,
                                                sharding.put_batch(batch_KxB, mesh, leading_axes=1))
        in_flight.add(step_metrics)
        device_pending.append(step_metrics)
        step += 1
        window_steps += 1
        done = step == total_steps
        if done or step % log_every == 0:
            log(step)
        if done or step % eval_every == 0:
            evaluate(step)
        if done or step % checkpoint_every == 0 or stop.signum is not None:
            flush(step)
            group_checkpoints.save(step, states, loop_state={
                "data": [it.get_state() for it in iterators], "pending_train_metrics": pending,
                "diverged": diverged})
    group_checkpoints.close()
    if step < total_steps:
        for writer in writers:
            writer.close()
        return
    if any(k not in last_eval for k in range(len(runs)) if diverged[k] is None):
        evaluate(step)  # Resumed after the group finished training: evaluate again.
    for writer in writers:
        writer.close()
    _write_runs(runs, states, iterators, last_eval, diverged, experiment, split_name, status, progress,
                wall_time=time.time() - wall_start, started=started, start_step=start_step)


def _write_runs(runs, states, iterators, last_eval, diverged, experiment, split_name, status, progress,
                *, wall_time: float, started: str, start_step: int) -> None:
    """Each run's final checkpoint, results.json, plots and manifest, as an ordinary run has."""
    for k, run in enumerate(runs):
        session = {"started": started, "argv": ["experiments.sweep --vectorize", run.name],
                   "start_step": start_step, "end_step": experiment.total_steps, "ended": workdir_lib.now(),
                   "wall_time_s": round(wall_time / len(runs), 2), "vectorized_with": len(runs)}
        if diverged[k] is not None:
            message = f"non-finite training metrics by step {diverged[k]}"
            workdir_lib.record_session(run.workdir, {**session, "status": f"failed: {message}"})
            status.update(run.name, status="failed", returncode=None, log_tail=message)
            progress.update(1)
            continue
        step, summary, confusion = last_eval[k]
        run_checkpoints = checkpoint.Checkpoints(os.path.join(run.workdir, "checkpoints"))
        run_checkpoints.save(step, jax.tree.map(lambda x: x[k], states), data_iterator=iterators[k],  # noqa: B023
                             loop_state={"pending_train_metrics": []},
                             metrics=evaluation.named(summary, split_name))
        run_checkpoints.close()
        evaluation.write_final_results(
            run.workdir, step=step, steps_per_epoch=experiment.steps_per_epoch, split_name=split_name,
            summary=summary, confusion=confusion, class_names=experiment.eval_data.class_names)
        workdir_lib.record_session(run.workdir, {**session, "status": "finished"})
        status.update(run.name, status="finished", returncode=0, ended=workdir_lib.now())
        progress.update(1)
