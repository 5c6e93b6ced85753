"""train.profile_steps: a jax.profiler trace of a span of train steps."""

import jax
from absl import logging

from research.validation import profile_range


class Profiler:
    """train.profile_steps=START:END: a jax.profiler trace of the calls that begin at steps
    START to END - 1 (once a session), written under `directory`: `*.xplane.pb` for
    TensorBoard's profile tab (the xprof plugin, not installed here) and
    `perfetto_trace.json.gz` for ui.perfetto.dev or chrome://tracing."""

    def __init__(self, spec: str, directory: str):
        self.range, self.directory, self.tracing = profile_range(spec), directory, False

    def before(self, step: int, state) -> None:
        """Called before each train call, at the step it begins with."""
        if self.range is None:
            return
        start, end = self.range
        if not self.tracing and start <= step < end:
            jax.profiler.start_trace(self.directory, create_perfetto_trace=True)
            self.tracing = True
        elif self.tracing and step >= end:
            self.close(state)

    def close(self, state) -> None:
        """Ends the trace once the calls traced have run."""
        if self.tracing:
            jax.block_until_ready(state)
            jax.profiler.stop_trace()
            logging.info("profile of steps %d-%d written to %s", *self.range, self.directory)
            self.tracing, self.range = False, None
