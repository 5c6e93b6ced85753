"""SIGTERM/SIGINT become a request to checkpoint and stop at the next step boundary.

A single process (a laptop, one GPU box, a sweep worker) is signalled directly, and the loop
polls a flag. A run of several processes must stop at the same step in all of them, whichever
process the notice reached: there JAX's distributed runtime takes SIGTERM itself (its
preemption notifier), agrees on a step with the other processes, and the loop asks it at every
step (`multihost_utils.reached_preemption_sync_point`).
"""

import os
import signal
import sys


class StopRequest:
    """Context manager: while active, the first SIGTERM/SIGINT makes `requested(step)` true
    (in every process of the run, at the same step) instead of killing the process; `signum`
    is then the signal. A second SIGINT (Ctrl-C twice) kills it as usual; repeated SIGTERMs
    are ignored, since a parent-death signal may arrive more than once (Linux sends it again
    each time the dying parent's threads hand the child on)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, synced: bool = False):
        """`synced`: this process is one of several of a run (jax.process_count() > 1)."""
        self.signum = None
        self._previous = {}
        self._synced = synced

    def _handle(self, signum, frame):
        del frame
        if self.signum is not None and signum == signal.SIGINT:  # Ctrl-C twice: stop now.
            signal.signal(signum, self._previous[signum])
            signal.raise_signal(signum)
        if self._synced:  # Ctrl-C: handed to the runtime's notifier, which holds SIGTERM.
            self.signum = signum
            os.kill(os.getpid(), signal.SIGTERM)
        elif self.signum is None:
            self.signum = signum

    def requested(self, step: int) -> bool:
        """Whether to checkpoint and stop after `step`; with several processes, asked by all of
        them at every step, so they agree on it."""
        if not self._synced:
            return self.signum is not None
        from jax.experimental import multihost_utils

        if multihost_utils.reached_preemption_sync_point(step):
            self.signum = self.signum or signal.SIGTERM
            return True
        return False

    def __enter__(self):
        # With several processes SIGTERM stays with JAX's preemption notifier.
        for sig in (signal.SIGINT,) if self._synced else self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def terminate_with_parent() -> None:
    """In a child process, before exec: SIGTERM when the parent dies (Linux; elsewhere nothing),
    so a launcher killed even by SIGKILL leaves children that checkpoint and stop. Linux ties
    this to the thread that started the child."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def exit_description(returncode: int) -> str:
    """'exit 1', or the signal that ended the process: 'killed by SIGKILL' (a negative code, or
    128 + N as a shell and our own runs report it)."""
    number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else None
    if number is None:
        return f"exit {returncode}"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"killed by {name}" if returncode < 0 else f"exit {returncode} ({name})"
