"""The processes of one run started on this machine: N children of one launcher, each given the
coordinator's address, the process count and its index as flags (experiments/common.py), so
they join one JAX distributed runtime: as children of the launcher (`run_local`, for a
workstation with several accelerators and for the tests), or as the tasks of a Ray placement
group, one process a bundle (`run_on_ray`, with the sweep's Ray settings). Under SLURM and the
like the scheduler starts the processes itself (README, "Many hosts").

The launcher forwards SIGTERM and SIGINT to every process as SIGTERM (they checkpoint at the
same step and exit 143); a second SIGINT kills them. A process that ends with an error takes
the others down with it: they notice within seconds (a collective fails) or the runtime's
heartbeat timeout, and whatever is still alive after `grace_s` is killed.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from research.platform.signals import exit_description, terminate_with_parent


def free_port() -> int:
    """A TCP port nothing on this machine listens on now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_command(command: list[str], address: str, num_processes: int, process_id: int) -> list[str]:
    return [*command, f"--coordinator_address={address}", f"--num_processes={num_processes}",
            f"--process_id={process_id}"]


def _relay(process_id: int, stream, out) -> None:
    """Copies a child's output line by line, each line prefixed with the child's index; the
    frames of a C++ fatal error's stack trace (JAX's distributed client ending a process whose
    peer died: its fatal line before them says so) are left out unless RESEARCH_TRACEBACK=1."""
    in_trace, keep_traces = False, os.environ.get("RESEARCH_TRACEBACK") == "1"
    for line in iter(stream.readline, b""):
        if not keep_traces and line.startswith(b"*** Check failure stack trace"):
            in_trace = True
            continue
        if in_trace and line.startswith(b"    @ "):
            continue
        in_trace = False
        out.write(f"[{process_id}] ".encode() + line)
        out.flush()


def run_local(command: list[str], num_processes: int, *, port: int = 0, grace_s: float = 60.0) -> int:
    """Runs `command` as `num_processes` processes of one run; returns 0 when all finished, else
    the exit code of the first process to fail (128 + N for a signal, as a shell reports it)."""
    address = f"127.0.0.1:{port or free_port()}"
    children = [
        # Own sessions: a Ctrl-C reaches them only through the launcher, once.
        subprocess.Popen(process_command(command, address, num_processes, i), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=terminate_with_parent)
        for i in range(num_processes)]
    relays = [threading.Thread(target=_relay, args=(i, child.stdout, sys.stdout.buffer), daemon=True)
              for i, child in enumerate(children)]
    for relay in relays:
        relay.start()
    stops = []

    def forward(signum, frame):
        del frame
        stops.append(signum)
        kill = signum == signal.SIGINT and stops.count(signal.SIGINT) > 1  # Ctrl-C twice.
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL if kill else signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    ended, killed_by_us = {}, set()  # child index -> when it was seen ended; those we killed.
    try:
        while len(ended) < len(children):
            for i, child in enumerate(children):
                if i not in ended and child.poll() is not None:
                    ended[i] = time.monotonic()
            failed_at = min((t for i, t in ended.items() if children[i].returncode), default=None)
            if failed_at is not None and time.monotonic() - failed_at > grace_s:
                for i, child in enumerate(children):
                    if child.poll() is None:
                        child.kill()
                        killed_by_us.add(i)
            time.sleep(0.1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for relay in relays:
        relay.join(timeout=5)
    failed = [i for i, child in enumerate(children) if child.returncode and i not in killed_by_us]
    if not failed:
        return 0
    # The first to fail is the likely cause, but a peer's death makes the others fail within
    # milliseconds, sooner than the dead process is reaped: one killed by a signal from outside
    # (not its own abort) is taken as the cause before one that exited with an error.
    def cause_first(i: int) -> tuple[bool, float]:
        killed_from_outside = children[i].returncode < 0 and children[i].returncode != -signal.SIGABRT
        return not killed_from_outside, ended[i]

    cause = min(failed, key=cause_first)
    codes = {child.returncode for child in children}
    if not stops and len(failed) == len(children) and len(codes) == 1 and codes.pop() > 0:
        # Each process refused the same way (a bad flag or config, a missing dataset): its own
        # error line above says what to change; a rerun as it is would fail again.
        print(f"launch: every process failed ({exit_description(children[cause].returncode)}); their "
              "error lines above say what to change", file=sys.stderr)
        return children[cause].returncode
    return _outcome(cause, children[cause].returncode, stopped=bool(stops), what="ended first")


def _outcome(process_id: int, code: int, *, stopped: bool, what: str) -> int:
    """The launcher's exit code for a run that `process_id` ended with `code` (128 + N for a
    signal, as a shell reports it); unless the launcher stopped the run itself, it says which
    process ended it and how."""
    if not stopped:
        print(f"launch: process {process_id} {what} ({exit_description(code)}); the others stopped "
              "with it; rerun the same launch to resume from the last checkpoint", file=sys.stderr)
    return 128 - code if code < 0 else code


def _coordinator_address() -> str:
    """Run where process 0 will run: this node's address and a port free on it."""
    import ray

    return f"{ray.util.get_node_ip_address()}:{free_port()}"


def _placed(ray, group, what: str, timeout_s: float, stops: list) -> bool:
    """Waits for `group` to be placed, saying every 30 s what it waits for and what the cluster
    has free. False (after one line saying why) when `timeout_s` (0: never) passes first, or a
    signal in `stops` ends the wait."""
    ready, start, said = group.ready(), time.time(), time.time()

    def free() -> dict:  # Asked of the cluster only for a line that shows it.
        return {k: v for k, v in ray.available_resources().items() if k in ("CPU", "GPU")}

    while not ray.wait([ready], timeout=1.0)[0]:
        waited = time.time() - start
        if stops:
            print(f"launch: stopped by signal {stops[0]} while waiting for Ray to place {what}; nothing ran",
                  file=sys.stderr)
            return False
        if timeout_s and waited >= timeout_s:
            print(f"launch: Ray could not place {what} in {timeout_s:.0f} s (free now: {free()}); ask for "
                  "less (--ray_num_cpus, --ray_num_gpus, --num_processes), drop --ray_spread, add nodes, "
                  "or wait longer with --ray_placement_timeout_s (0: for ever)", file=sys.stderr)
            return False
        if time.time() - said >= 30:
            print(f"launch: waiting {waited:.0f} s for Ray to place {what} (free now: {free()})",
                  file=sys.stderr)
            said = time.time()
    return True


def run_on_ray(command: list[str], num_processes: int, *, address: str | None = None, num_cpus: float = 1,
               num_gpus: float = 0, spread: bool = False, cwd: str | None = None,
               placement_timeout_s: float = 600) -> int:
    """Runs `command` as `num_processes` processes of one run on a Ray cluster (`address`; None
    starts a local Ray), each in a bundle of a placement group reserved before any starts
    (`spread`: each bundle on its own node). Their output goes to this console through Ray.
    Returns as `run_local` does; SIGTERM or Ctrl-C here stops every process with SIGTERM. A
    placement group not placed within `placement_timeout_s` (0: no limit) ends the launch
    with one line and status 1, before anything ran."""
    from research.parallel import ray_cluster

    ray_cluster.plain_driver_logs()
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    ray, watcher = ray_cluster.connect(address, local_cpus=None if address else num_processes * num_cpus,
                                       log_to_driver=True)
    bundle = {"CPU": num_cpus, **({"GPU": num_gpus} if num_gpus else {})}
    group = placement_group([bundle] * num_processes, strategy="STRICT_SPREAD" if spread else "PACK")
    refs, stops = [], []

    def forward(signum, frame):
        del frame
        stops.append(signum)
        for ref in refs:  # The task SIGTERMs its process (ray_cluster.execute).
            ray.cancel(ref)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        what = (f"{num_processes} processes of {bundle}" + (", one a node" if spread else ""))
        if not _placed(ray, group, what, placement_timeout_s, stops):
            return 128 + stops[0] if stops else 1
        on = lambda i: PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i)  # noqa: E731
        coordinator = ray.get(ray.remote(num_cpus=0)(_coordinator_address).options(scheduling_strategy=on(0))
                              .remote())
        task = ray.remote(max_retries=0)(ray_cluster.execute)
        refs = [task.options(num_cpus=num_cpus, num_gpus=num_gpus, scheduling_strategy=on(i),
                             name=f"process {i}").remote(
                    process_command(command, coordinator, num_processes, i), cwd or os.getcwd(), None)
                for i in range(num_processes)]
        for ref in refs if stops else ():  # A signal came while they were being started.
            ray.cancel(ref)
        codes = []
        for ref in refs:
            try:
                codes.append(ray.get(ref))
            except ray.exceptions.TaskCancelledError:
                codes.append(128 + signal.SIGTERM)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        remove_placement_group(group)
        ray_cluster.disconnect(ray, watcher)
    failed = [i for i, code in enumerate(codes) if code]
    if not failed:
        return 0
    return _outcome(failed[0], codes[failed[0]], stopped=bool(stops), what="failed")
