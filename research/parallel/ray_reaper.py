"""Cleans up after a sweep that started its own local Ray and died without shutting it down.

Ray's head processes go with the driver, but its dashboard and runtime-environment agents
outlive a SIGKILLed driver (they ignore SIGTERM), and its raylet kills the task workers' process
groups outright. Ray has no option for either, so the sweep starts this watcher beside it, in a
session of its own: it notes the sweep's descendants every second and, once the sweep is gone
(its pipe closes), sends each survivor SIGTERM, gives the runs time to checkpoint, and
SIGKILLs the Ray processes that ignored it.

  python -m research.parallel.ray_reaper SWEEP_PID   (stdin: a pipe the sweep holds open)
"""

import os
import signal
import subprocess
import sys
import threading
import time

import psutil

RAY_GRACE_S = 5.0  # Ray's own processes: SIGTERM, then SIGKILL after this.
RUN_GRACE_S = 120.0  # A run checkpoints on SIGTERM; SIGKILL only if it takes longer than this.


def start(pid: int) -> subprocess.Popen:
    """Starts the watcher over process `pid` (this one's, normally); keep the returned handle:
    its stdin is the pipe whose closing tells the watcher that `pid` has ended."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.Popen([sys.executable, "-m", "research.parallel.ray_reaper", str(pid)],
                            cwd=package_parent, stdin=subprocess.PIPE, start_new_session=True)


def _is_run(process: psutil.Process) -> bool:
    try:
        return "experiments.train" in process.cmdline()
    except psutil.Error:
        return False


def _watch(sweep: psutil.Process, closed: threading.Event) -> list[psutil.Process]:
    """The sweep's descendants as last seen before it ended."""
    seen = {}
    while not closed.is_set() and sweep.is_running():
        try:
            for child in sweep.children(recursive=True):
                if child.pid != os.getpid():
                    seen[child.pid] = child  # psutil checks the start time too: no reused pid.
        except psutil.Error:  # A process that ended during the walk: look again.
            pass
        closed.wait(1.0)
    return list(seen.values())


def _reap(processes: list[psutil.Process]) -> None:
    alive = [p for p in processes if p.is_running()]
    runs = [p for p in alive if _is_run(p)]
    for process in alive:
        try:
            process.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    others = [p for p in alive if p not in runs]
    _, ray_left = psutil.wait_procs(others, timeout=RAY_GRACE_S)
    _, runs_left = psutil.wait_procs(runs, timeout=RUN_GRACE_S)
    for process in ray_left + runs_left:
        try:
            process.kill()
        except psutil.Error:
            pass


def main(pid: int) -> None:
    try:
        sweep = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    closed = threading.Event()
    # stdin reaches end of file when the sweep ends, however it ends.
    threading.Thread(target=lambda: (sys.stdin.buffer.read(), closed.set()), daemon=True).start()
    processes = _watch(sweep, closed)
    while sweep.is_running() and not closed.is_set():
        time.sleep(0.2)
    _reap(processes)


if __name__ == "__main__":
    main(int(sys.argv[1]))
