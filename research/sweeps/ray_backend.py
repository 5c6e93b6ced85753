"""Sweep runs as Ray tasks, on a local Ray or an existing cluster (the optional `ray` extra).

Each task runs the run's train command on whichever node Ray picks, with the CPUs/GPUs it
asked for, so the sweep directory and this repository must be at the same paths on every node
(a shared filesystem). Resume and summaries work as with the local backend: a task that is
lost leaves its workdir's checkpoints, and rerunning the sweep resumes from them. A run is
stopped with SIGTERM, never killed outright, so it checkpoints first: when its task is
cancelled, and when its Ray worker dies (a killed sweep's raylet kills its workers).
"""

from research.parallel.ray_cluster import connect, disconnect, execute
from research.sweeps.launch import ROOT, Run


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
