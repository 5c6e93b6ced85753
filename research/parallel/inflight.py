"""A bound on the calls dispatched to the devices and not yet finished.

A jitted call returns as soon as it is dispatched, so a loop that does not read results runs
ahead of the devices by any number of calls. XLA:CPU with several devices in one process
deadlocks there: each device admits at most 32 unfinished calls, a launch waiting for a slot
holds one of the threads that run the calls, and an earlier call's all-reduce then waits for
a peer that has no thread to run on, until XLA aborts the process
(docs/upstream/xla_cpu_inflight_deadlock.md). Every loop that dispatches steps keeps at most
MAX_IN_FLIGHT of them unfinished, on every backend: the devices still have that many calls
queued whenever the host waits, so it costs no step time.
"""

import collections

import jax

MAX_IN_FLIGHT = 8


class InFlight:
    """`add(outputs)` after each call; waits for the oldest recorded call while more than
    `limit` are recorded, so at most `limit` + 1 are unfinished as the next one is dispatched.
    Pass outputs the next call does not donate (metrics, sums): a call's outputs are all ready
    once it has finished on every device."""

    def __init__(self, limit: int = MAX_IN_FLIGHT):
        if limit < 1:
            raise ValueError(f"limit={limit}; at least one call must be allowed in flight")
        self.limit = limit
        self._outputs = collections.deque()

    def add(self, outputs) -> None:
        self._outputs.append(outputs)
        while len(self._outputs) > self.limit:
            jax.block_until_ready(self._outputs.popleft())

    def __len__(self) -> int:
        return len(self._outputs)
