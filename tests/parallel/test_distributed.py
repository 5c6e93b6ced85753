"""A run of two processes joined by JAX's distributed runtime (scripts/launch.py; gloo
collectives on CPU, one CPU device a process): it ends where one process with two devices
does; SIGTERM to either process stops both at the same step and the rerun (reading its rows
streamed from disk) ends where an uninterrupted run does; SIGKILL to one ends the run within a
minute and the rerun resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from tests.conftest import ROOT, run_program, suite_xla_flags
from tests.train.conftest import assert_same_run, read_json, saved_steps

RUN = ["--config=configs/digits_mlp.py", "--config.train.steps=300", "--config.train.checkpoint_every=20",
       "--config.train.eval_every=100", "--config.train.log_every=20"]
LM_RUN = ["--config=configs/lm.py:size=tiny", "--config.mesh.data=1", "--config.mesh.fsdp=2",
          "--config.train.steps=10", "--config.train.eval_every=10"]


def environment(devices: int) -> dict:
    """This environment with `devices` CPU devices a process (the tests' own process has 4)."""
    env = {**os.environ, "XLA_FLAGS": suite_xla_flags(devices)}
    return env


def launch(workdir: str, tfds_dir: str, *flags: str, program: str = "experiments.train",
           backend: str = "local") -> subprocess.Popen:
    data_flags = [f"--config.data.tfds_dir={tfds_dir}"] if program == "experiments.train" else []
    return subprocess.Popen(
        [sys.executable, "scripts/launch.py", "--num_processes=2", f"--backend={backend}", "--",
         sys.executable, "-m", program, *flags, f"--workdir={workdir}", *data_flags],
        cwd=ROOT, env=environment(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 240) -> str:
    output, _ = process.communicate(timeout=timeout)
    return output


def run_process(launcher: subprocess.Popen, process_id: int) -> psutil.Process:
    """The launcher's child with --process_id=`process_id`."""
    deadline = time.time() + 60
    while time.time() < deadline:
        for child in psutil.Process(launcher.pid).children():
            if f"--process_id={process_id}" in child.cmdline():
                return child
        time.sleep(0.05)
    raise AssertionError("the launcher started no such process")


def wait_for_checkpoint(launcher: subprocess.Popen, workdir: str, after: int = 0) -> None:
    deadline = time.time() + 120
    while max(saved_steps(workdir), default=0) <= after:
        assert launcher.poll() is None, launcher.stdout.read()[-3000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def two_processes(tfds_dir, tmp_path_factory):
    """The digits run, uninterrupted, as two processes."""
    workdir = str(tmp_path_factory.mktemp("two") / "run")
    launcher = launch(workdir, tfds_dir, *RUN)
    output = finish(launcher)
    assert launcher.returncode == 0, output[-3000:]
    return workdir


@pytest.mark.parametrize("flags", [RUN, LM_RUN], ids=["digits_mlp", "lm_fsdp2"])
def test_two_processes_end_where_one_process_with_two_devices_does(flags, two_processes, tfds_dir, tmp_path):
    if flags is RUN:
        workdir = two_processes
    else:
        workdir = str(tmp_path / "two")
        launcher = launch(workdir, tfds_dir, *flags)
        output = finish(launcher)
        assert launcher.returncode == 0, output[-3000:]
    single = str(tmp_path / "single")
    done = run_program("experiments.train", *flags, f"--workdir={single}",
                       f"--config.data.tfds_dir={tfds_dir}", env=environment(2))
    assert done.returncode == 0, done.stderr[-3000:]
    two, one = read_json(f"{workdir}/results.json"), read_json(f"{single}/results.json")
    assert two.keys() == one.keys()
    for name, value in one.items():
        np.testing.assert_allclose(two[name], value, rtol=1e-5, atol=1e-7, err_msg=name)
    # Process 0 alone wrote the run's files: one session, each metrics row once.
    manifest = read_json(f"{workdir}/manifest.json")
    assert manifest["process_count"] == 2 and len(manifest["devices"]) == 2
    assert [s["status"] for s in manifest["sessions"]] == ["finished"]
    rows = [json.loads(line) for line in open(f"{workdir}/metrics.jsonl")]
    single_rows = [json.loads(line) for line in open(f"{single}/metrics.jsonl")]
    assert [(r["step"], sorted(r)) for r in rows] == [(r["step"], sorted(r)) for r in single_rows]


def test_two_processes_evaluate_a_checkpoint_as_the_run_did(two_processes):
    evaluator = launch(two_processes, "", "--checkpoint=latest", program="experiments.evaluate")
    output = finish(evaluator)
    assert evaluator.returncode == 0, output[-3000:]
    assert "Given directory is read only" not in output  # Orbax's noise on a read-only open.
    [written] = os.listdir(f"{two_processes}/evaluations")  # By process 0 alone.
    evaluated, results = read_json(f"{two_processes}/evaluations/{written}"), read_json(
        f"{two_processes}/results.json")
    for name in ("eval/test/loss", "eval/test/accuracy", "eval/test/f1"):
        assert evaluated[name] == pytest.approx(results[name], rel=1e-6), name


def test_sigterm_to_a_ray_launch_stops_its_processes_and_the_rerun_ends_the_same(
        two_processes, tfds_dir, tmp_path):
    """The processes in a Ray placement group stop at the launcher's SIGTERM (it cancels their
    tasks, which SIGTERM their processes) with a checkpoint, and a local rerun resumes it."""
    workdir = str(tmp_path / "ray")
    launcher = launch(workdir, tfds_dir, *RUN, backend="ray")
    wait_for_checkpoint(launcher, workdir)
    launcher.send_signal(signal.SIGTERM)
    output = finish(launcher, timeout=120)
    assert launcher.returncode == 128 + signal.SIGTERM, output[-3000:]
    # Each line labelled by its process, without colour codes.
    labelled = "(process 0 pid=" in output and "(process 1 pid=" in output
    assert labelled and "\x1b[" not in output, output[-3000:]
    session = read_json(f"{workdir}/manifest.json")["sessions"][-1]
    assert session["status"].startswith("stopped by signal 15"), session
    assert saved_steps(workdir)[-1] == session["end_step"] < 300
    rerun = launch(workdir, tfds_dir, *RUN)
    output = finish(rerun)
    assert rerun.returncode == 0, output[-3000:]
    assert_same_run(two_processes, workdir)


def test_a_ray_placement_that_cannot_be_met_is_one_line_after_the_timeout(tmp_path):
    """Two processes one a node on a local Ray of one node: never placed. The launch says so in
    one line after --ray_placement_timeout_s and exits 1, and nothing ran."""
    workdir = tmp_path / "never"
    launcher = subprocess.Popen(
        [sys.executable, "scripts/launch.py", "--num_processes=2", "--backend=ray", "--ray_spread",
         "--ray_placement_timeout_s=3", "--", sys.executable, "-m", "experiments.train",
         "--config=configs/digits_mlp.py", f"--workdir={workdir}"],
        cwd=ROOT, env=environment(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = finish(launcher, timeout=120)
    assert launcher.returncode == 1, output[-3000:]
    assert output.rstrip().splitlines()[-1].startswith(
        "launch: Ray could not place 2 processes of {'CPU': 1.0}, one a node in 3 s"), output[-3000:]
    assert not workdir.exists()


def test_sigterm_to_one_process_stops_both_at_one_step_and_the_streamed_rerun_ends_the_same(
        two_processes, tfds_dir, tmp_path):
    workdir = str(tmp_path / "terminated")
    launcher = launch(workdir, tfds_dir, *RUN)
    wait_for_checkpoint(launcher, workdir)
    run_process(launcher, 1).send_signal(signal.SIGTERM)
    output = finish(launcher)
    assert launcher.returncode == 128 + signal.SIGTERM, output[-3000:]
    stopped = [line for line in output.splitlines() if "stopped by signal 15 at step" in line]
    assert len(stopped) == 2 and len({line.split("at step")[1] for line in stopped}) == 1, output[-3000:]
    session = read_json(f"{workdir}/manifest.json")["sessions"][-1]
    assert session["status"].startswith("stopped by signal 15")
    assert saved_steps(workdir)[-1] == session["end_step"]
    # The rerun streams its rows from the prepared files (a Grain worker each): the same bits.
    rerun = launch(workdir, tfds_dir, *RUN, "--config.data.in_memory=false", "--config.data.workers=1")
    output = finish(rerun)
    assert rerun.returncode == 0, output[-3000:]
    assert_same_run(two_processes, workdir)


def test_sigkill_to_one_process_ends_the_run_within_a_minute_and_the_rerun_resumes(tfds_dir, tmp_path):
    workdir = str(tmp_path / "killed")
    launcher = launch(workdir, tfds_dir, *RUN)
    wait_for_checkpoint(launcher, workdir)
    survivor = run_process(launcher, 0)
    run_process(launcher, 1).kill()
    killed_at = time.time()
    output = finish(launcher, timeout=120)
    assert not survivor.is_running() and time.time() - killed_at < 60, output[-3000:]
    assert launcher.returncode == 128 + signal.SIGKILL, output[-3000:]
    last_line = output.splitlines()[-1]
    assert last_line.startswith("launch: process 1 ended first (killed by SIGKILL)"), output[-3000:]
    # The survivor's end is its own lines, not a wall of C++ and Python stacks.
    assert "Check failure stack trace" not in output and "Fatal Python error" not in output, output[-3000:]
    resumed_from = saved_steps(workdir)[-1]
    rerun = launch(workdir, tfds_dir, *RUN)
    output = finish(rerun)
    assert rerun.returncode == 0, output[-3000:]
    killed, session = read_json(f"{workdir}/manifest.json")["sessions"][-2:]
    assert session["status"] == "finished" and session["start_step"] == resumed_from > 0
    assert killed["status"] == "lost" and f"from step {resumed_from}" in killed["lost"]

