"""SIGTERM/SIGINT become a request to checkpoint and stop at the next step boundary.

Orbax's own preemption checks need jax.distributed on a multi-host job; a single process
(a laptop, one GPU box, a sweep worker) is signalled directly, so the loop polls this flag.
"""

import signal


class StopRequest:
    """Context manager: while active, the first SIGTERM/SIGINT sets `signum` instead of
    killing the process. A second SIGINT (Ctrl-C twice) kills it as usual; repeated SIGTERMs
    are ignored, since a parent-death signal may arrive more than once (Linux sends it again
    each time the dying parent's threads hand the child on)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        del frame
        if self.signum is not None and signum == signal.SIGINT:  # Ctrl-C twice: stop now.
            signal.signal(signum, self._previous[signum])
            signal.raise_signal(signum)
        if self.signum is None:
            self.signum = signum

    def __enter__(self):
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
