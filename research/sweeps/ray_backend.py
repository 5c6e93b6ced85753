"""Sweep runs as Ray tasks, on a local Ray or an existing cluster (the optional `ray` extra).

Each task runs the run's train command on whichever node Ray picks, with the CPUs/GPUs it
asked for, so the sweep directory and this repository must be at the same paths on every node
(a shared filesystem). Resume and summaries work as with the local backend: a task that is
lost leaves its workdir's checkpoints, and rerunning the sweep resumes from them. A run is
stopped with SIGTERM, never killed outright, so it checkpoints first: when its task is
cancelled, and when its Ray worker dies (a killed sweep's raylet kills its workers).
"""

import contextlib
import logging
import os
import signal
import subprocess

from research.platform.signals import terminate_with_parent
from research.sweeps import reaper
from research.sweeps.launch import ROOT, Run


def execute(command: tuple[str, ...], cwd: str, log_file: str | None) -> int:
    """A Ray task's body: runs `command` to its end, its output to `log_file` (None: the
    worker's own output, which Ray shows on the driver); cancelling the task SIGTERMs it."""
    with open(log_file, "ab") if log_file else contextlib.nullcontext() as log:
        # Its own session, out of the worker's process group that Ray kills with SIGKILL; and
        # SIGTERM when the worker dies.
        child = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT if log else None,
                                 start_new_session=True, preexec_fn=terminate_with_parent)
        try:
            return child.wait()
        except BaseException:  # Cancelled: Ray raises KeyboardInterrupt in the task.
            child.send_signal(signal.SIGTERM)
            return child.wait()


def connect(address: str | None, *, local_cpus: int | None = None, log_to_driver: bool = False):
    """(ray, the watcher of a local Ray we started or None): joins the cluster at `address`, or
    starts a local Ray that nothing of may outlive this process."""
    import ray

    watcher = None
    if not ray.is_initialized():
        local = {}
        if address is None:
            # Ray warns that it chose its own default (token auth) for the local cluster it
            # starts: nothing to act on. Its warning when auth is disabled still shows.
            logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(
                lambda record: not record.getMessage().startswith("Token authentication is enabled"))
            watcher = reaper.start(os.getpid())
            # Its raylet would SIGKILL a dead worker's children: the run's SIGTERM comes first.
            local = {"num_cpus": local_cpus, "_system_config": {"kill_child_processes_on_worker_exit": False}}
        ray.init(address=address, include_dashboard=False, log_to_driver=log_to_driver, **local)
    return ray, watcher


def disconnect(ray, watcher) -> None:
    """Shuts down the local Ray `connect` started (and lets its watcher clean up and exit)."""
    if watcher is not None:
        ray.shutdown()
        watcher.stdin.close()
        watcher.wait()


class RayBackend:
    def __init__(self, address: str | None, *, num_cpus: float = 1, num_gpus: float = 0,
                 local_cpus: int | None = None):
        ray, self._reaper = connect(address, local_cpus=local_cpus)
        self._ray = ray
        cluster_cpus = ray.cluster_resources().get("CPU", 1)
        self.parallel = max(1, int(cluster_cpus // max(num_cpus, 1e-9)))  # Threads waiting on tasks.
        self._task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(execute)
        self._pending = set()

    def execute(self, run: Run, log_file: str) -> int:
        ref = self._task.remote(run.command, ROOT, log_file)
        self._pending.add(ref)
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.TaskCancelledError:
            return 128 + 15  # Stopped, as a SIGTERM'd run reports it.
        finally:
            self._pending.discard(ref)

    def stop(self, signum: int) -> None:
        del signum  # Ray delivers SIGTERM-like cancellation (KeyboardInterrupt) to the task.
        for ref in list(self._pending):
            self._ray.cancel(ref)

    def close(self) -> None:
        """Shuts down the Ray this backend started (and lets its watcher clean up and exit)."""
        disconnect(self._ray, self._reaper)
        self._reaper = None
