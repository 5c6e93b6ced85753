"""Ray for the processes of one run (research/parallel/processes.py) and for sweeps
(research/sweeps/ray_backend.py): joining a cluster or starting a local Ray that nothing of
outlives this process, and the task body that runs one command there."""

import contextlib
import logging
import os
import signal
import subprocess

from research.parallel import ray_reaper
from research.platform.signals import terminate_with_parent

# A local Ray's node address: its processes find each other on loopback. (Ray 2.60's gRPC
# servers still listen on every interface whatever this says; no option of ray.init changes it.)
LOOPBACK = "127.0.0.1"


def plain_driver_logs() -> None:
    """The runs' lines as they wrote them, on the console of the program that drives Ray: none
    dropped by Ray's deduplication of similar lines across workers (it hid evaluation lines),
    no colour codes around the "(process N pid=...)" prefix. The user's own settings of these
    variables win. Call before Ray is imported: it reads RAY_DEDUP_LOGS then."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")


def execute(command: tuple[str, ...], cwd: str, log_file: str | None) -> int:
    """A Ray task's body: runs `command` to its end, its output to `log_file` (None: the
    worker's own output, which Ray shows on the driver); cancelling the task SIGTERMs it."""
    with open(log_file, "ab") if log_file else contextlib.nullcontext() as log:
        # Its own session, out of the worker's process group that Ray kills with SIGKILL; and
        # SIGTERM when the worker dies.
        child = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT if log else None,
                                 start_new_session=True, preexec_fn=terminate_with_parent)
        try:
            # Polled, not one blocking wait: Ray cancels a task by raising KeyboardInterrupt in
            # its thread, which Python delivers only between bytecodes, so a task blocked in
            # waitpid would learn of it when the run had ended on its own.
            while True:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    return child.wait(timeout=0.2)
        except BaseException:  # Cancelled: Ray raises KeyboardInterrupt in the task.
            child.send_signal(signal.SIGTERM)
            return child.wait()


def connect(address: str | None, *, local_cpus: int | None = None, log_to_driver: bool = False):
    """(ray, the watcher of a local Ray we started or None): joins the cluster at `address`, or
    starts a local Ray of our own (its node address loopback) that nothing of may outlive this
    process.

    `address` None means RAY_ADDRESS where set (Ray's own variable: a cluster the user named),
    else a local Ray of our own. Ray alone would also join the last `ray start` recorded in
    /tmp/ray/ray_current_cluster, even one long stopped: a local sweep or launch must not run
    on a cluster the user did not name."""
    import ray

    watcher = None
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        local = {}
        if address is None:
            # Ray warns that it chose its own default (token auth) for the local cluster it
            # starts: nothing to act on. Its warning when auth is disabled still shows.
            logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(
                lambda record: not record.getMessage().startswith("Token authentication is enabled"))
            watcher = ray_reaper.start(os.getpid())
            # Its raylet would SIGKILL a dead worker's children: the run's SIGTERM comes first.
            local = {"num_cpus": local_cpus, "_node_ip_address": LOOPBACK,
                     "_system_config": {"kill_child_processes_on_worker_exit": False}}
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=log_to_driver, **local)
    return ray, watcher


def disconnect(ray, watcher) -> None:
    """Shuts down the local Ray `connect` started (and lets its watcher clean up and exit)."""
    if watcher is not None:
        ray.shutdown()
        watcher.stdin.close()
        watcher.wait()
