"""The training loop: init or restore, iterate, log, evaluate, checkpoint.

Everything that changes is in the train state, the data iterator or on disk; the loop only
moves batches in, metrics out and checkpoints to disk.
"""

import math
import os
import sys
import time

import numpy as np
from absl import logging

from research import checkpoint, evaluation, metrics, sharding
from research import logging as metric_logging
from research import workdir as workdir_lib
from research.data import pipeline, text
from research.errors import UserError
from research.experiment import build, initial_state, intervals, jit_multi_step, jit_steps, steps_this_call
from research.inflight import InFlight
from research.preemption import StopRequest


def train_and_evaluate(config, workdir: str, *, allow_config_change: bool = False) -> dict:
    """Trains `config` in `workdir`, resuming from its latest checkpoint, and returns the final
    results (also written to results.json). Returns early, after saving a checkpoint, when the
    process receives SIGTERM or SIGINT; the returned dict then has "status": "stopped"."""
    wall_start = time.time()
    session = {"started": workdir_lib.now(), "argv": list(sys.argv), "status": "running"}
    # Everything that can fail on bad input comes before the workdir is touched.
    experiment = build(config, workdir)
    state = initial_state(experiment, config.seed)
    warm_start = None
    if config.init_from:  # Used only when the run does not resume from a checkpoint of its own.
        warm_start = checkpoint.load_matching(
            config.init_from, {"params": state.params, "model_state": state.model_state})
    workdir_lib.prepare(workdir, config.to_dict(), allow_config_change=allow_config_change)
    if experiment.tokenizer_file:
        text.save_with_run(experiment.tokenizer_file, workdir)
    train_iterator = pipeline.train_batches(
        experiment.train_data.arrays, batch_size=config.data.batch_size, seed=config.seed,
        augment=experiment.augment)
    checkpoints = checkpoint.Checkpoints(
        os.path.join(workdir, "checkpoints"), keep=config.train.keep,
        best_metric=config.train.best_metric, best_mode=config.train.best_mode)
    restored = checkpoints.restore_latest_good(checkpoint.abstract_like(state), train_iterator)
    # Per-step train metrics not yet logged; a checkpoint taken between two log steps holds
    # them, so a resumed run logs the same means an uninterrupted one does.
    pending = []
    if restored is not None:
        state, pending = restored.state, restored.loop_state["pending_train_metrics"]
    elif warm_start is not None:
        state = state.replace(**warm_start)
    start_step = int(state.step)
    session["start_step"] = start_step
    workdir_lib.record_session(workdir, session)
    if start_step:
        logging.info("resuming %s from step %d", workdir, start_step)

    train_step, eval_step = jit_steps(experiment, config.seed, state)
    train_steps = jit_multi_step(experiment, config.seed, state) if config.train.steps_per_call > 1 else None
    split_name = config.eval.split
    writer = metric_logging.MetricWriter(workdir, start_step)
    log_every, eval_every, checkpoint_every = intervals(config.train, experiment.steps_per_epoch)
    total_steps = experiment.total_steps
    window_start, window_steps, examples_per_sec = time.time(), 0, []
    last_eval = None  # (step, summary, confusion)

    def fetch_pending(step: int) -> list[dict]:
        """The pending metrics on the host; a non-finite value stops the run before any save."""
        nonlocal pending
        pending = metrics.to_host(pending)
        bad = [name for m in pending for name, v in m.items() if not math.isfinite(v)]
        if bad:
            raise UserError(
                f"non-finite {sorted(set(bad))} between steps {step - len(pending) + 1} and {step}; "
                "stopped without saving, the last good checkpoint is step "
                f"{max(checkpoints.steps(), default=0)}; lower --config.opt.lr or set --config.opt.clip_norm")
        return pending

    def log_train_metrics(step: int) -> None:
        nonlocal pending, window_start, window_steps
        train = metrics.mean_over_steps(fetch_pending(step))
        elapsed = time.time() - window_start
        rate = window_steps * config.data.batch_size / elapsed if window_steps else 0.0
        if window_steps:
            examples_per_sec.append(rate)
        writer.write(step, {**{f"train/{k}": v for k, v in train.items()},
                            "perf/examples_per_sec": rate,
                            "perf/step_time_ms": 1000 * elapsed / max(window_steps, 1),
                            "epoch": step / experiment.steps_per_epoch})
        bar.set_postfix(loss=f"{train['loss']:.4f}", ex_per_s=f"{rate:,.0f}")
        pending, window_start, window_steps = [], time.time(), 0

    def run_eval(step: int) -> dict:
        nonlocal last_eval
        summary, confusion = evaluation.evaluate(
            eval_step, experiment.task, state, experiment.eval_data, batch_size=config.eval.batch_size,
            mesh=experiment.mesh)
        last_eval = (step, summary, confusion)
        return evaluation.named(summary, split_name)

    step, save, in_flight = start_step, True, InFlight()
    with StopRequest() as stop, metric_logging.progress_bar(total_steps, start_step) as bar:
        while step < total_steps and stop.signum is None:
            steps = steps_this_call(step, config.train, experiment.steps_per_epoch, total_steps)
            if steps == 1:
                batch = sharding.put_batch(next(train_iterator), experiment.mesh)
                state, step_metrics = train_step(state, batch)
            else:
                batches = pipeline.stack([next(train_iterator) for _ in range(steps)])
                batches = sharding.put_batch(batches, experiment.mesh, leading_axes=1)
                state, step_metrics = train_steps(state, batches)
            in_flight.add(step_metrics)
            step += steps
            pending.append(step_metrics)
            window_steps += steps
            bar.update(steps)
            done = step == total_steps
            save = done or step % checkpoint_every == 0
            if done or step % log_every == 0:
                log_train_metrics(step)
            eval_metrics = None
            if done or step % eval_every == 0:
                eval_metrics = run_eval(step)
                writer.write(step, eval_metrics)
                logging.info("step %d: %s", step, " ".join(f"{k}={v:.4f}" for k, v in eval_metrics.items()))
            if save:
                checkpoints.save(step, state, data_iterator=train_iterator, metrics=eval_metrics,
                                 loop_state={"pending_train_metrics": fetch_pending(step)})
                writer.flush()
            if eval_metrics or save:  # Eval and checkpoint time is not step time.
                window_start, window_steps = time.time(), 0
        if stop.signum is not None and not save:  # Not saved at this step yet.
            checkpoints.save(step, state, data_iterator=train_iterator,
                             loop_state={"pending_train_metrics": fetch_pending(step)})
        checkpoints.close()  # Waits for the last save, still shielded from a repeated signal.
        writer.close()

    session.update(end_step=step, ended=workdir_lib.now(), wall_time_s=round(time.time() - wall_start, 2),
                   train_examples_per_sec=float(np.median(examples_per_sec)) if examples_per_sec else None)
    if step < total_steps:
        session["status"] = f"stopped by signal {stop.signum} at step {step}"
        workdir_lib.record_session(workdir, session)
        logging.warning("stopped by signal %d at step %d; checkpoint saved, rerun to resume",
                        stop.signum, step)
        return {"status": "stopped", "signal": stop.signum, "step": step}

    if last_eval is None or last_eval[0] != step:  # A rerun of a finished run evaluates again.
        run_eval(step)
    _, summary, confusion = last_eval
    results = evaluation.write_final_results(
        workdir, step=step, steps_per_epoch=experiment.steps_per_epoch, split_name=split_name,
        summary=summary, confusion=confusion, class_names=experiment.eval_data.class_names)
    session["status"] = "finished"
    workdir_lib.record_session(workdir, session)
    return {"status": "finished", **results}
