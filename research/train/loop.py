"""The training procedure, top to bottom: build, init or restore, the loop, the final evaluation.

One loop trains a single run and a vectorized sweep group alike. A `Group` names the runs that
share the train state (one, or several stacked on a leading axis of the state, the batches and
the metrics) and where their files go; the loop is given the state, the jitted steps and the
batch iterator, and moves batches in, metrics out and checkpoints to disk.
"""

import contextlib
import dataclasses
import math
import os
import sys
import time
import uuid

import jax
import numpy as np
from absl import logging

from research import metrics
from research import workdir as workdir_lib
from research.data import pipeline, text
from research.errors import UserError
from research.parallel import distributed, sharding
from research.parallel.inflight import InFlight
from research.platform.signals import StopRequest
from research.run import checkpoint
from research.run.experiment import Experiment, build
from research.train import evaluation, metric_writer, wandb_log
from research.train.profiling import Profiler
from research.train.state import initial_state
from research.train.steps import Steps, jit_steps


@dataclasses.dataclass(frozen=True)
class Group:
    """The runs one loop trains, and what is particular to them: here one run, whose state,
    batches and metrics are its own. A vectorized sweep group (research/sweeps/vectorized.py)
    is a subclass whose runs share them on a leading axis."""

    workdirs: list[str]
    configs: list
    checkpoint_dir: str
    leading_axes: int = 0  # Axes of the runs ahead of each array's own.

    def split(self, tree, axis: int = 0) -> list:
        """Each run's part of a host tree: the tree itself for one run."""
        return [tree]

    def session_fields(self) -> dict:
        """Added to each run's session record."""
        return {}

    def profile_steps(self, train_config) -> str:
        return train_config.profile_steps

    def best_metric(self, train_config) -> str:
        """What the best checkpoint is chosen by ("": no best checkpoint)."""
        return train_config.best_metric

    def removed_message(self) -> str:
        """The error line when the workdir is removed while training ("": not watched)."""
        return workdir_lib.removed_message(self.workdirs[0])

    def finished(self, experiment: Experiment, state) -> None:
        """Files of a finished run beyond results.json (the first process only)."""
        evaluation.plot_predictions(self.workdirs[0], experiment, state.variables, experiment.eval_data)


def train_and_evaluate(config, workdir: str, *, allow_config_change: bool = False) -> dict:
    """Trains `config` in `workdir`, resuming from its latest checkpoint, and returns the final
    results (also written to results.json). Returns early, after saving a checkpoint, when the
    process receives SIGTERM or SIGINT; the returned dict then has "status": "stopped"."""
    experiment = build(config, workdir)  # Everything bad input can break comes first.
    state = initial_state(experiment, config.seed)
    group = Group([workdir], [config], os.path.join(workdir, "checkpoints"))
    batches = pipeline.train_batches(
        experiment.train_data.arrays, batch_size=config.data.batch_size, seed=config.seed,
        augment=experiment.augment, rows=sharding.process_rows(experiment.mesh, config.data.batch_size),
        workers=config.data.workers)
    steps = jit_steps(experiment, config.seed, state, config.train.steps_per_call)
    # Held until the last save has finished; with several processes, they stop together.
    with contextlib.closing(batches), StopRequest(synced=jax.process_count() > 1) as stop:
        results, _ = train(config, experiment, group, state, steps, batches, stop,
                           allow_config_change=allow_config_change)
    return results[0]


def train(config, experiment: Experiment, group: Group, state, steps: Steps, batches, stop, *,
          allow_config_change: bool = False) -> tuple[list[dict], object]:
    """Trains `group` from `state` or from its latest checkpoint until `config`'s last step or
    until `stop` (a StopRequest the caller holds) asks to stop; returns each run's result
    ({"status": "finished", **metrics}, "stopped" or "failed") and the final state. Each
    workdir is held for the whole time: a second run on it is refused. Of the processes of a
    run, the first holds the workdirs and writes their files; all of them save checkpoints."""
    with contextlib.ExitStack() as held:
        for workdir in group.workdirs if distributed.is_primary() else ():
            held.enter_context(workdir_lib.exclusive(workdir))
        return _train(config, experiment, group, state, steps, batches, stop,
                      allow_config_change=allow_config_change, held=held)


def _train(config, experiment: Experiment, group: Group, state, steps: Steps, batches, stop, *,
           allow_config_change: bool, held: contextlib.ExitStack) -> tuple[list[dict], object]:
    wall_start, primary = time.time(), distributed.is_primary()
    layout = {**sharding.describe(experiment.mesh), "per_device_bytes": {
        "params": sharding.per_device_bytes(state.params),
        "opt_state": sharding.per_device_bytes(state.opt_state)}}
    sessions = [{"id": uuid.uuid4().hex[:12], "started": workdir_lib.now(), "argv": list(sys.argv),
                 "status": "running", "mesh": layout, **group.session_fields()}
                for _ in group.workdirs]
    state, progress, checkpoints = start_or_resume(config, experiment, group, state, batches,
                                                   allow_config_change=allow_config_change)
    start_step = step = int(np.asarray(state.step).reshape(-1)[0])
    if start_step:
        logging.info("resuming %s from step %d", group.checkpoint_dir, start_step)
    sessions = [{**session, "start_step": start_step} for session in sessions]
    for workdir, session in zip(group.workdirs, sessions, strict=True) if primary else ():
        workdir_lib.record_session(workdir, session)

    cadence = Cadence.of(config.train, experiment.steps_per_epoch, experiment.total_steps)
    profiler = Profiler(group.profile_steps(config.train) if primary else "",
                        os.path.join(group.workdirs[0], "profile"))
    mirrors = [wandb_log.open_mirror(workdir, run_config) if primary else None
               for workdir, run_config in zip(group.workdirs, group.configs, strict=True)]
    for mirror in filter(None, mirrors):  # Unless finished below: a stop, or an error.
        held.callback(mirror.finish, None)
    writers = [metric_writer.MetricWriter(workdir, start_step, mirror) if primary
               else metric_writer.NoWriter() for workdir, mirror in zip(group.workdirs, mirrors, strict=True)]
    window, rates, last_eval, saved = Window.start(), [], None, True
    unfetched, in_flight = [], InFlight()
    # Leaving `checkpoints` waits for the last save, still inside the caller's StopRequest.
    with checkpoints, metric_writer.progress_bar(cadence.total_steps, start_step, shown=primary) as bar:
        while step < cadence.total_steps and progress.stopped_early is None and not stop.requested(step):
            calls = cadence.steps_this_call(step, config.train.steps_per_call)
            profiler.before(step, state)
            state, step_metrics = run_call(steps, state, batches, calls, experiment.mesh, group.leading_axes)
            in_flight.add(step_metrics)
            unfetched.append(step_metrics)
            step += calls
            window = window.advance(calls)
            bar.update(calls)
            logs, evals, saved = cadence.events(step)
            if logs or saved:
                progress = progress.fetched(unfetched, group, step, checkpoints)
                unfetched = []
            if logs:
                rate, loss = write_train_metrics(writers, progress, window, step, config.data.batch_size,
                                                 experiment.steps_per_epoch)
                bar.set_postfix(loss=f"{loss:.4f}", ex_per_s=f"{rate:,.0f}")
                rates += [rate] if window.steps else []
                progress, window = progress.logged(), Window.start()
            if evals:
                last_eval = (step, evaluate_runs(steps.eval, state, experiment, config, group,
                                                 periodic=step < cadence.total_steps))
                write_eval_metrics(writers, progress, last_eval, config.eval.split)
                progress = progress.evaluated(last_eval, config.train, config.eval.split)
                saved = saved or progress.stopped_early is not None  # Its last step is saved.
            if saved:
                checkpoints.save(step, state, data_iterator=batches, loop_state=progress.to_json(),
                                 metrics=best_metrics(last_eval, step, config.eval.split))
                for writer in writers:
                    writer.flush()
            if evals or saved:  # Evaluation and checkpoint time is not step time.
                window = Window.start()
        profiler.close(state)
        if stop.signum is not None and not saved:  # Not saved at this step yet.
            progress = progress.fetched(unfetched, group, step, checkpoints)
            checkpoints.save(step, state, data_iterator=batches, loop_state=progress.to_json())
        for writer in writers:
            writer.close()

    ended = {"end_step": step, "ended": workdir_lib.now(), "wall_time_s": round(time.time() - wall_start, 2),
             "train_examples_per_sec": float(np.median(rates)) if rates else None,
             "peak_device_bytes": peak_device_bytes()}
    sessions = [{**session, **ended} for session in sessions]
    if step < cadence.total_steps and progress.stopped_early is None:
        logging.warning("stopped by signal %d at step %d; checkpoint saved, rerun to resume",
                        stop.signum, step)
        for workdir, session in zip(group.workdirs, sessions, strict=True) if primary else ():
            workdir_lib.record_session(
                workdir, {**session, "status": f"stopped by signal {stop.signum} at step {step}"})
        return [{"status": "stopped", "signal": stop.signum, "step": step}] * len(group.workdirs), state
    if last_eval is None or last_eval[0] != step:  # A rerun of a finished run evaluates again.
        last_eval = (step, evaluate_runs(steps.eval, state, experiment, config, group))
    if progress.stopped_early is not None:
        logging.info("stopped early at step %d: %s", step, early_stop_reason(progress, config.train))
    results = finish_runs(group, sessions, progress, last_eval, experiment, config.eval, config.train, state)
    if primary and all(result["status"] == "finished" for result in results):
        group.finished(experiment, state)
    for mirror, result in zip(mirrors, results, strict=True):
        if mirror is not None:
            mirror.finish(result if result["status"] == "finished" else None)
    return results, state


def start_or_resume(config, experiment: Experiment, group: Group, state, batches, *,
                    allow_config_change: bool) -> tuple[object, "Progress", checkpoint.Checkpoints]:
    """Makes each workdir the home of its config, then gives the state and progress to start
    from (the latest readable checkpoint, the data iterator put back at its position, else
    `state` with the weights of the run it starts from, `config.init_from`'s or a compression
    method's source) and the group's checkpoints."""
    warm_start = None
    if experiment.warm_start is not None:  # Read before anything is written: a mismatch leaves
        # the workdirs as they were.
        warm_start = experiment.warm_start({"params": state.params, "model_state": state.model_state},
                                           group.leading_axes)
    primary = distributed.is_primary()  # Every process checks the workdir; the first writes.
    for workdir, run_config in zip(group.workdirs, group.configs, strict=True):
        workdir_lib.prepare(workdir, run_config.to_dict(), allow_config_change=allow_config_change,
                            write=primary)
        if experiment.tokenizer_file and primary:
            text.save_with_run(experiment.tokenizer_file, workdir)
    checkpoints = checkpoint.Checkpoints(
        group.checkpoint_dir, keep=config.train.keep, best_mode=config.train.best_mode,
        best_metric=group.best_metric(config.train), exit_if_removed=group.removed_message())
    restored = checkpoints.restore_latest_good(checkpoint.abstract_like(state), batches)
    if restored is not None:
        return restored.state, Progress.from_json(restored.loop_state, len(group.workdirs)), checkpoints
    if warm_start is not None:
        state = state.replace(**warm_start)
    return state, Progress.fresh(len(group.workdirs)), checkpoints


def early_stop_reason(progress: "Progress", train_config) -> str:
    value, step = progress.best
    return (f"{train_config.best_metric} has not improved on {value:.6g} (step {step}) for "
            f"{progress.since_best} evaluations (train.early_stop_patience="
            f"{train_config.early_stop_patience})")


def finish_runs(group: Group, sessions: list[dict], progress: "Progress", last_eval: tuple,
                experiment: Experiment, eval_config, train_config, state) -> list[dict]:
    """Each run's results (and, from the first process, its results.json, plots and finished
    session); a run whose metrics turned non-finite is recorded as failed instead."""
    results, primary, split_name = [], distributed.is_primary(), eval_config.split
    for k, (workdir, session) in enumerate(zip(group.workdirs, sessions, strict=True)):
        if progress.diverged[k] is not None:
            message = f"non-finite training metrics by step {progress.diverged[k]}"
            if primary:
                workdir_lib.record_session(workdir, {**session, "status": f"failed: {message}"})
            results.append({"status": "failed", "message": message})
            continue
        summary, confusion = last_eval[1][k]
        final = evaluation.final_results(last_eval[0], experiment.steps_per_epoch, split_name, summary,
                                         confusion, eval_config.max_batches)
        if experiment.report is not None:
            final.update(experiment.report(*group.split((state.params, state.opt_state))[k]))
        if progress.stopped_early is not None:
            final["early_stopped"] = {"step": progress.stopped_early, "best_step": progress.best[1],
                                      "best": progress.best[0],
                                      "reason": early_stop_reason(progress, train_config)}
        if primary:
            evaluation.write_final_results(workdir, final, split_name=split_name, confusion=confusion,
                                           class_names=experiment.eval_data.class_names)
            workdir_lib.record_session(workdir, {**session, "status": "finished"})
        results.append({"status": "finished", **final})
    return results


@dataclasses.dataclass(frozen=True)
class Cadence:
    """When the loop logs, evaluates and checkpoints, and how many steps each call runs."""

    log_every: int
    eval_every: int
    checkpoint_every: int
    total_steps: int

    @classmethod
    def of(cls, train_config, steps_per_epoch: int, total_steps: int) -> "Cadence":
        """train.eval_every=0 means once an epoch; train.checkpoint_every=0, at every evaluation."""
        eval_every = train_config.eval_every or steps_per_epoch
        checkpoint_every = train_config.checkpoint_every or eval_every
        return cls(train_config.log_every, eval_every, checkpoint_every, total_steps)

    def events(self, step: int) -> tuple[bool, bool, bool]:
        """Whether the loop logs, evaluates and checkpoints after `step` (all three at the end)."""
        done = step == self.total_steps
        return (done or step % self.log_every == 0, done or step % self.eval_every == 0,
                done or step % self.checkpoint_every == 0)

    def steps_this_call(self, step: int, steps_per_call: int) -> int:
        """`steps_per_call` when the call starts on a multiple of it and ends by the next event,
        else 1. Two call lengths, so two compilations; and a function of `step` alone, so a
        resumed run makes the same calls as an uninterrupted one."""
        every = (self.log_every, self.eval_every, self.checkpoint_every)
        next_event = min(self.total_steps, *(step - step % n + n for n in every))
        return steps_per_call if step % steps_per_call == 0 and step + steps_per_call <= next_event else 1


@dataclasses.dataclass(frozen=True)
class Window:
    """The steps since the last log, evaluation or checkpoint, and when it began."""

    started: float
    steps: int = 0

    @classmethod
    def start(cls) -> "Window":
        return cls(time.time())

    def advance(self, steps: int) -> "Window":
        return dataclasses.replace(self, steps=self.steps + steps)


@dataclasses.dataclass(frozen=True)
class Progress:
    """Each run's train metrics on the host not yet logged, and the step by which they turned
    non-finite (None while finite): what a checkpoint keeps besides the state."""

    pending: list[list[dict]]
    diverged: list[int | None]
    # train.early_stop_patience (one run): the best value of train.best_metric and its step,
    # evaluations since, and the step training stopped early at (None while it goes on).
    best: tuple[float, int] | None = None
    since_best: int = 0
    stopped_early: int | None = None

    @classmethod
    def fresh(cls, runs: int) -> "Progress":
        return cls([[] for _ in range(runs)], [None] * runs)

    @classmethod
    def from_json(cls, loop_state: dict, runs: int) -> "Progress":
        pending = loop_state["pending_train_metrics"]
        if pending and isinstance(pending[0], dict):  # Written before groups shared this loop.
            pending = [pending]
        best = loop_state.get("best")
        return cls(pending, loop_state.get("diverged", [None] * runs), tuple(best) if best else None,
                   loop_state.get("since_best", 0), loop_state.get("stopped_early"))

    def to_json(self) -> dict:
        return {"pending_train_metrics": self.pending, "diverged": self.diverged,
                "best": list(self.best) if self.best else None, "since_best": self.since_best,
                "stopped_early": self.stopped_early}

    def evaluated(self, last_eval: tuple, train_config, split_name: str) -> "Progress":
        """After an evaluation: with `train.early_stop_patience` above 0, stops training once
        `train.best_metric` has not improved on its best for that many evaluations."""
        patience = train_config.early_stop_patience
        if not patience:
            return self
        step, per_run = last_eval
        value = metrics.named_eval(per_run[0][0], split_name)[train_config.best_metric]
        better = self.best is None or (value > self.best[0] if train_config.best_mode == "max"
                                       else value < self.best[0])
        if better:
            return dataclasses.replace(self, best=(value, step), since_best=0)
        since_best = self.since_best + 1
        return dataclasses.replace(self, since_best=since_best,
                                   stopped_early=step if since_best >= patience else None)

    def fetched(self, unfetched: list, group: Group, step: int, checkpoints) -> "Progress":
        """With the device metrics of the calls since the last fetch (one device transfer). A
        run turning non-finite is marked; when every run has, training stops here, before
        anything is saved."""
        host = jax.device_get(unfetched)
        pending = [list(p) for p in self.pending]
        diverged = list(self.diverged)
        for k, run_pending in enumerate(pending):
            run_pending += metrics.to_host([group.split(m, axis=-1)[k] for m in host])
            bad = sorted({name for m in run_pending for name, v in m.items() if not math.isfinite(v)})
            if bad and diverged[k] is None:
                diverged[k] = step
                if all(d is not None for d in diverged):
                    last_good = max(checkpoints.steps(), default=0)
                    raise UserError(
                        f"non-finite {bad} between steps {step - len(run_pending) + 1} and {step}; stopped "
                        f"without saving, the last good checkpoint is step {last_good}; "
                        "lower --config.opt.lr or set --config.opt.clip_norm")
        return dataclasses.replace(self, pending=pending, diverged=diverged)

    def logged(self) -> "Progress":
        return dataclasses.replace(self, pending=[[] for _ in self.pending])


def run_call(steps: Steps, state, batches, calls: int, mesh, leading_axes: int):
    """One jitted call: one train step, or `calls` of them over stacked batches."""
    if calls == 1:
        return steps.train(state, sharding.put_batch(next(batches), mesh, leading_axes))
    stacked_batches = pipeline.stack([next(batches) for _ in range(calls)])
    return steps.multi(state, sharding.put_batch(stacked_batches, mesh, leading_axes + 1))


def write_train_metrics(writers, progress: Progress, window: Window, step: int, batch_size: int,
                        steps_per_epoch: int) -> tuple[float, float]:
    """Each finite run's mean train metrics since the last log, with the window's speed;
    returns that speed (examples/s of one run) and the last logged run's loss."""
    perf = metrics.perf(window.steps, batch_size, time.time() - window.started)
    loss = math.nan
    for writer, pending, diverged in zip(writers, progress.pending, progress.diverged, strict=True):
        if diverged is None and pending:
            train = metrics.mean_over_steps(pending)
            writer.write(step, {**metrics.named_train(train), **perf, "epoch": step / steps_per_epoch})
            loss = train["loss"]
    return perf["perf/examples_per_sec"], loss


def peak_device_bytes() -> int | None:
    """The most memory one of this process's devices has held so far (its allocator's peak),
    where the backend keeps the figure (GPU, TPU); None on CPU. `--dry_run` plans the same."""
    peaks = []
    for device in jax.local_devices():
        try:
            stats = device.memory_stats() or {}
        except (NotImplementedError, RuntimeError):  # Backends without allocator statistics.
            stats = {}
        if "peak_bytes_in_use" in stats:
            peaks.append(int(stats["peak_bytes_in_use"]))
    return max(peaks, default=None)


def evaluate_runs(eval_step, state, experiment: Experiment, config, group: Group,
                  periodic: bool = False) -> list[tuple]:
    """Each run's (summary, confusion matrix) on the configured split; `periodic`: an evaluation
    during training, capped by eval.periodic_max_batches when it is set."""
    max_batches = (periodic and config.eval.periodic_max_batches) or config.eval.max_batches
    totals = evaluation.accumulate(eval_step, state.variables, experiment.eval_data,
                                   batch_size=config.eval.batch_size, mesh=experiment.mesh,
                                   max_batches=max_batches)
    return [experiment.task.summarize(run_totals) for run_totals in group.split(totals)]


def write_eval_metrics(writers, progress: Progress, last_eval: tuple, split_name: str) -> None:
    step, per_run = last_eval
    for writer, (summary, _), diverged in zip(writers, per_run, progress.diverged, strict=True):
        if diverged is None:
            writer.write(step, metrics.named_eval(summary, split_name))
    logging.info("step %d: %s", step, " ".join(
        f"{k}={v:.4f}" for k, v in metrics.named_eval(per_run[0][0], split_name).items()))


def best_metrics(last_eval: tuple | None, step: int, split_name: str) -> dict | None:
    """The first run's evaluation at `step`, which the best checkpoint is chosen by (a group
    keeps no best checkpoint)."""
    if last_eval is None or last_eval[0] != step:
        return None
    return metrics.named_eval(last_eval[1][0][0], split_name)
