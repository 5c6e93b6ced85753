"""Start-up as a user meets it: `python -m experiments.train --help`, and launch to the first
finished train step of a one-step run, each in a fresh process from the repository root."""

import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.cases import ROOT


def wait_for_first_step(process: subprocess.Popen, metrics_path: str) -> float | None:
    """Seconds until metrics.jsonl has a train row (the loop logs it after the step's metrics
    reach the host), or None if the process exits first."""
    start = time.perf_counter()
    while process.poll() is None:
        if os.path.exists(metrics_path):
            with open(metrics_path) as f:
                if any("train/loss" in line for line in f):
                    return time.perf_counter() - start
        time.sleep(0.01)
    return None


def startup(config_spec: str) -> dict:
    """Wall times of `experiments.train --help` (median of 3) and of a one-step run of
    `config_spec`: launch to its first train row, and to the process's exit."""
    command = [sys.executable, "-m", "experiments.train"]
    help_times = []
    for _ in range(3):
        start = time.perf_counter()
        shown = subprocess.run([*command, "--help"], cwd=ROOT, capture_output=True, text=True)
        help_times.append(time.perf_counter() - start)
        if "--workdir" not in shown.stdout:  # absl exits with 1 after --help.
            raise RuntimeError(f"experiments.train --help failed:\n{shown.stderr[-2000:]}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir, log_path = os.path.join(tmp, "run"), os.path.join(tmp, "log")
        with open(log_path, "w") as log:
            start = time.perf_counter()
            process = subprocess.Popen(
                [*command, f"--config={config_spec}", f"--workdir={workdir}", "--config.train.steps=1"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            first_step_s = wait_for_first_step(process, os.path.join(workdir, "metrics.jsonl"))
            process.wait()
            exit_s = time.perf_counter() - start
        if process.returncode or first_step_s is None:
            with open(log_path) as f:
                raise RuntimeError(f"the one-step run of {config_spec} failed:\n{f.read()[-2000:]}")
    return {"help_s": statistics.median(help_times), "config": config_spec,
            "launch_to_first_step_s": first_step_s, "launch_to_exit_s": exit_s}
