"""The real loop end to end: research.train.loop.train_and_evaluate in a temporary workdir, timed
from its own TensorBoard log rows, less the compilation JAX reports inside that span."""

import contextlib
import copy
import json
import math
import os
import tempfile
import time

import jax


class CompileTimes:
    """When and for how long JAX traced, lowered and compiled (its jax.monitoring events), while
    `recording()` is open."""

    def __init__(self):
        self.events = []  # (end wall time, seconds)

    def _record(self, event: str, duration_secs: float, **kwargs) -> None:
        if event.startswith("/jax/core/compile/"):
            self.events.append((time.time(), duration_secs))

    @contextlib.contextmanager
    def recording(self):
        jax.monitoring.register_event_duration_secs_listener(self._record)
        try:
            yield self
        finally:
            jax.monitoring.unregister_event_duration_listener(self._record)

    def seconds_between(self, start: float, end: float) -> float:
        return sum(seconds for ended, seconds in self.events if start <= ended <= end)


def end_to_end(config, steps_per_epoch: int, steps: int = 0) -> dict:
    """Examples/s of train_and_evaluate between its first and last train log rows, a span that
    holds one evaluation and checkpoint, less the time spent compiling in it (a step compiled
    once a process: a short span would otherwise be mostly compilation); and the loop's own
    figure (manifest.json), which leaves evaluation and checkpoint time out. `steps`: the run's
    length; 0: enough for one evaluation period between two log rows."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from research.train import loop

    cadence = loop.Cadence.of(config.train, steps_per_epoch, total_steps=0)
    log_every, eval_every = cadence.log_every, cadence.eval_every
    steps = steps or log_every * math.ceil((eval_every + log_every) / log_every)
    config = copy.deepcopy(config)
    config.train.steps = steps
    compile_times = CompileTimes()
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        with compile_times.recording():
            loop.train_and_evaluate(config, workdir)
        wall_s = time.perf_counter() - start
        events = EventAccumulator(workdir)
        events.Reload()
        logged = events.Scalars("train/loss")
        with open(os.path.join(workdir, "manifest.json")) as f:
            session = json.load(f)["sessions"][-1]
    first, last = logged[0], logged[-1]
    if last.step <= first.step:
        raise ValueError(f"the end-to-end run of {steps} steps logged fewer than two train rows; "
                         "raise --e2e_steps")
    compile_s = compile_times.seconds_between(first.wall_time, last.wall_time)
    span_s = last.wall_time - first.wall_time - compile_s
    # An evaluation at step s comes after that step's log row.
    evaluations = sum(first.step <= s < last.step for s in range(eval_every, steps, eval_every))
    return {"steps": steps, "span": [first.step, last.step], "evaluations_in_span": evaluations,
            "compile_s_in_span": compile_s,
            "examples_per_sec": (last.step - first.step) * config.data.batch_size / span_s,
            "loop_examples_per_sec_manifest": session.get("train_examples_per_sec"), "wall_s": wall_s}
