"""Sweeps: a config's `get_sweep(name)` expanded into runs, each an ordinary
`experiments.train` process with its own workdir, launched N at a time (locally or on Ray).

Rerunning a sweep resumes it: finished runs (results.json present) are skipped, and the
others rerun their train command, which resumes from their checkpoints.
"""

import collections
import concurrent.futures
import dataclasses
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from absl import logging

from research import config as config_lib
from research import validation
from research import workdir as workdir_lib
from research.errors import UserError
from research.platform.signals import exit_description, terminate_with_parent

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOG_TAIL_LINES = 20


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    overrides: dict
    workdir: str
    command: tuple[str, ...]

    @property
    def finished(self) -> bool:
        return os.path.exists(os.path.join(self.workdir, "results.json"))


def load_config_module(path: str):
    if not os.path.exists(path):
        raise UserError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location("sweep_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def format_value(value) -> str:
    """A value as a --config.KEY=VALUE flag reads it back."""
    return value if isinstance(value, str) else repr(tuple(value) if isinstance(value, list) else value)


def run_name(overrides: dict) -> str:
    """A directory name from the overrides, in their order: `opt.lr=0.003,seed=1`."""
    text = ",".join(f"{key}={format_value(value)}" for key, value in overrides.items()) or "base"
    return re.sub(r"[^A-Za-z0-9._=,+-]", "-", text)


def expand(config_spec: str, sweep_name: str, base_config, base_flags: list[str],
           sweep_dir: str) -> list[Run]:
    """The runs of `sweep_name`, each checked as a resolved config (keys, types, ranges, names)
    before anything runs. `base_flags` (--config.KEY=VALUE) apply to every run."""
    module = load_config_module(config_spec.partition(":")[0])
    if not hasattr(module, "get_sweep"):
        raise UserError(f"{config_spec} defines no get_sweep(name)")
    try:
        sweep = module.get_sweep(sweep_name)
    except ValueError as e:
        raise UserError(str(e)) from e
    given = {flag.removeprefix("--config.").partition("=")[0]: flag for flag in base_flags}
    swept = list(dict.fromkeys(key for overrides in sweep for key in overrides))
    clashes = [key for key in swept if key in given]
    if clashes:  # The run's own value would silently replace the flag's.
        raise UserError(f"{', '.join(given[key] for key in clashes)}: sweep {sweep_name!r} sets "
                        f"{', '.join(clashes)} in each run; drop the flag, or change the sweep in its "
                        "config file")
    runs = []
    for overrides in sweep:
        try:  # A bad key, type or value in any run is reported before anything runs.
            validation.validate(config_lib.apply_overrides(base_config, overrides))
        except UserError as e:
            raise UserError(f"sweep {sweep_name!r}, run {run_name(overrides)}: {e}") from e
        name = run_name(overrides)
        workdir = os.path.join(sweep_dir, name)
        command = (sys.executable, "-m", "experiments.train", f"--config={config_spec}", *base_flags,
                   *(f"--config.{k}={format_value(v)}" for k, v in overrides.items()),
                   f"--workdir={workdir}")
        runs.append(Run(name, dict(overrides), workdir, command))
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise UserError(f"sweep {sweep_name!r} has repeated runs: {repeated}")
    return runs


def claim_sweep_dir(sweep_dir: str, description: dict) -> None:
    """Writes sweep.json, or checks that the directory holds this same sweep."""
    path = os.path.join(sweep_dir, "sweep.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old != json.loads(json.dumps(description)):
            raise UserError(f"{sweep_dir} holds another sweep (see its sweep.json); use a new --sweep_dir")
        return
    if os.path.isdir(sweep_dir) and os.listdir(sweep_dir):
        raise UserError(f"{sweep_dir} is not empty and has no sweep.json; use a new --sweep_dir")
    workdir_lib.write_json(path, description)


class Status:
    """status.json: per run, its state, exit code, log tail and time; saved on every change."""

    def __init__(self, sweep_dir: str):
        self._path = os.path.join(sweep_dir, "status.json")
        self._lock = threading.Lock()
        self.runs = {}
        if os.path.exists(self._path):
            with open(self._path) as f:
                self.runs = json.load(f)

    def update(self, name: str, **fields) -> None:
        with self._lock:
            self.runs[name] = {**self.runs.get(name, {}), **fields}
            workdir_lib.write_json(self._path, self.runs)

    def count(self, state: str) -> int:
        return sum(1 for entry in self.runs.values() if entry.get("status") == state)


def log_path(sweep_dir: str, run: Run) -> str:
    return os.path.join(sweep_dir, "logs", f"{run.name}.log")


def log_tail(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-LOG_TAIL_LINES:])
    except OSError:
        return ""


class LocalBackend:
    """Each run a child process of this one, `parallel` at a time. SIGTERM/SIGINT to the sweep
    reach the children, which checkpoint and stop."""

    def __init__(self, parallel: int):
        self.parallel = parallel
        self._children = set()
        self._lock = threading.Lock()

    def execute(self, run: Run, log_file: str) -> int:
        with open(log_file, "ab") as log:
            # Its own session: a Ctrl-C reaches the run only through us, once. If we die, even
            # by SIGKILL, the run gets SIGTERM and checkpoints: a rerun of the sweep resumes it.
            child = subprocess.Popen(run.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=terminate_with_parent)
            with self._lock:
                self._children.add(child)
            returncode = child.wait()
            with self._lock:
                self._children.discard(child)
        return returncode

    def stop(self, signum: int) -> None:
        with self._lock:
            for child in self._children:
                child.send_signal(signum)

    def close(self) -> None:
        """Nothing to release: every run has ended by the time a sweep returns."""


def launch(runs: list[Run], sweep_dir: str, backend, status: Status, stop_request, progress) -> None:
    """Runs every unfinished run through `backend`, recording each outcome in `status`."""
    os.makedirs(os.path.join(sweep_dir, "logs"), exist_ok=True)
    todo = []
    for run in runs:
        if run.finished:
            status.update(run.name, status="finished")
            progress.update(1)
        else:
            todo.append(run)

    def one(run: Run) -> None:
        if stop_request.signum is not None:
            return
        status.update(run.name, status="running", started=workdir_lib.now())
        progress.set_postfix(running=status.count("running"), failed=status.count("failed"))
        start = time.time()
        returncode = backend.execute(run, log_path(sweep_dir, run))
        if run.finished:
            state = "finished"
        elif stop_request.signum is not None and (returncode >= 128 or returncode < 0):
            state = "stopped"  # Checkpointed (or killed) because the sweep was asked to stop.
        else:
            state = "failed"  # Its own error, or a signal from elsewhere (the OOM killer, say).
        ended = exit_description(returncode)
        status.update(run.name, status=state, returncode=returncode, exit=ended, ended=workdir_lib.now(),
                      process_s=round(time.time() - start, 2),
                      log_tail=log_tail(log_path(sweep_dir, run)) if state == "failed" else "")
        if state == "failed":
            logging.warning("run %s failed (%s); see %s", run.name, ended, log_path(sweep_dir, run))
        if state != "stopped":  # A stopped run is not done: the rerun of the sweep resumes it.
            progress.update(1)
        progress.set_postfix(running=status.count("running"), failed=status.count("failed"),
                             stopped=status.count("stopped"))

    with concurrent.futures.ThreadPoolExecutor(backend.parallel) as pool:
        futures = [pool.submit(one, run) for run in todo]
        forwarded = False
        while not all(f.done() for f in futures):
            if stop_request.signum is not None and not forwarded:
                backend.stop(signal.SIGTERM)  # Once: a second signal would kill the runs outright.
                forwarded = True
            time.sleep(0.2)
        for future in futures:
            future.result()


def run_sweep(config_spec: str, base_config, base_flags: list[str], sweep_name: str,
              sweep_dir: str, *, backend, dry_run: bool = False, summarize_only: bool = False,
              vectorize: bool = False) -> dict:
    """Expands, launches (or resumes) and summarises a sweep; returns the runs' count by
    state, and with "signal" the signal that stopped the sweep before it was done."""
    from tqdm import tqdm

    from research.platform.signals import StopRequest
    from research.sweeps import report

    runs = expand(config_spec, sweep_name, base_config, base_flags, sweep_dir)
    if dry_run:
        for run in runs:
            print(" ".join(run.command))
        return {"runs": len(runs)}
    claim_sweep_dir(sweep_dir, {"config": config_spec, "sweep": sweep_name, "base_flags": base_flags,
                                "runs": [{"name": r.name, "overrides": r.overrides} for r in runs]})
    status = Status(sweep_dir)
    if not summarize_only:
        with StopRequest() as stop, tqdm(total=len(runs), unit="run", desc=f"sweep {sweep_name}") as progress:
            if vectorize:
                from research.sweeps import vectorized
                vectorized.train_group(runs, base_config, sweep_dir, status, stop, progress)
            else:
                launch(runs, sweep_dir, backend, status, stop, progress)
        if stop.signum is not None:
            states = collections.Counter(status.runs.get(run.name, {}).get("status", "pending")
                                         for run in runs)
            return {"signal": stop.signum, **states}
    rows = report.summarize(
        runs, status.runs, sweep_dir, best_metric=base_config.train.best_metric,
        best_mode=base_config.train.best_mode, title=f"{config_spec} sweep {sweep_name}")
    return dict(collections.Counter(row["status"] for row in rows))
