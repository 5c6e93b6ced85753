"""Sweeps: declaring, running in parallel, failures, resume, summaries, Ray, reproduce."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from configs import digits_mlp
from research import config as config_lib
from research import plots
from research.errors import UserError
from research.sweeps import launch, report
from research.train import loop
from tests.conftest import ROOT, run_program


def write_config(tmp_path, sweep_body: str) -> str:
    """A config file: digits_mlp with the given get_sweep body."""
    path = tmp_path / "sweep_config.py"
    path.write_text(textwrap.dedent('''
        from configs import digits_mlp
        from research.config import product


        def get_config(arg=None):
            return digits_mlp.get_config(arg)


        def get_sweep(name):
            return ''') + sweep_body + "\n")
    return str(path)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


class Progress:
    def update(self, n):
        pass

    def set_postfix(self, **kwargs):
        pass


def test_product_and_zipped():
    assert config_lib.product(**{"opt.lr": [1, 2], "seed": range(2)}) == [
        {"opt.lr": 1, "seed": 0}, {"opt.lr": 1, "seed": 1},
        {"opt.lr": 2, "seed": 0}, {"opt.lr": 2, "seed": 1}]
    assert config_lib.zipped(a=[1, 2], b=[3, 4]) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
    with pytest.raises(ValueError, match="differ in length"):
        config_lib.zipped(a=[1], b=[3, 4])


@pytest.mark.parametrize("body,message", [
    ('[{"opt.lrr": 0.1}]', "unknown config key 'opt.lrr'"),
    ('[{"opt.lr": "fast"}]', "cannot take 'fast'"),
    ('[{"seed": 1}, {"seed": 1}]', "repeated runs"),
])
def test_bad_sweeps_are_caught_before_anything_runs(tmp_path, body, message):
    path = write_config(tmp_path, body)
    with pytest.raises(UserError, match=message):
        launch.expand(path, "any", digits_mlp.get_config(), [], str(tmp_path / "sweep"))
    assert not (tmp_path / "sweep").exists()


def test_dry_run_prints_the_commands(tmp_path, tfds_dir):
    result = run_program("experiments.sweep", "--config=configs/digits_mlp.py", "--sweep=lr",
                         f"--sweep_dir={tmp_path / 's'}", "--dry_run", f"--config.data.tfds_dir={tfds_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    assert f"--config.data.tfds_dir={tfds_dir} --config.opt.lr=0.001 --config.seed=0 " \
           f"--workdir={tmp_path / 's'}/opt.lr=0.001,seed=0" in lines[0]
    assert not (tmp_path / "s").exists()


def test_parallel_sweep_records_a_failure_summarises_and_resumes(tmp_path, tfds_dir):
    path = write_config(tmp_path, textwrap.dedent('''\
        product(**{"opt.lr": [0.003, 1e30], "seed": [0, 1]}) if name == "diverge" else []'''))
    sweep_dir = tmp_path / "s"
    flags = [f"--config={path}", "--sweep=diverge", f"--sweep_dir={sweep_dir}", "--parallel=2",
             f"--config.data.tfds_dir={tfds_dir}", "--config.opt.name=sgd", "--config.train.steps=30"]
    result = run_program("experiments.sweep", *flags)
    assert result.returncode == 1  # Some runs failed.
    status = json.load(open(sweep_dir / "status.json"))
    assert status["opt.lr=1e+30,seed=0"]["status"] == "failed"
    assert status["opt.lr=1e+30,seed=0"]["returncode"] == 1
    assert "non-finite" in status["opt.lr=1e+30,seed=0"]["log_tail"]
    assert status["opt.lr=0.003,seed=1"]["status"] == "finished"

    rows = read_csv(sweep_dir / "results.csv")
    assert [(r["opt.lr"], r["seed"], r["status"]) for r in rows] == [
        ("0.003", "0", "finished"), ("0.003", "1", "finished"),
        ("1e+30", "0", "failed"), ("1e+30", "1", "failed")]
    assert "train_loop_s" in rows[0] and "wall_time_s" not in rows[0]
    assert status["opt.lr=0.003,seed=1"]["process_s"] > float(rows[1]["train_loop_s"]) > 0
    accuracies = [float(r["eval/test/accuracy"]) for r in rows[:2]]
    markdown = (sweep_dir / "results.md").read_text()
    mean, std = np.mean(accuracies), np.std(accuracies, ddof=1)
    assert f"| **0.003** | **{mean:.4f} ± {std:.4f}**" in markdown
    assert "2 finished, 2 failed" in markdown
    assert {"learning_curves.png", "eval_test_accuracy_vs_opt.lr.png"} <= set(os.listdir(sweep_dir / "plots"))

    result = run_program("experiments.sweep", *flags)  # Finished runs are skipped.
    assert result.returncode == 1
    manifest = json.load(open(sweep_dir / "opt.lr=0.003,seed=0" / "manifest.json"))
    assert len(manifest["sessions"]) == 1

    os.remove(sweep_dir / "results.md")
    result = run_program("experiments.sweep", *flags, "--summarize_only")
    assert (sweep_dir / "results.md").exists()


def test_killed_sweep_resumes_its_runs(tmp_path, tfds_dir, digits_config):
    sweep_dir = tmp_path / "s"
    path = write_config(tmp_path, '[{"opt.lr": 0.001, "seed": 0}, {"opt.lr": 0.003, "seed": 0}]')
    flags = [f"--config={path}", "--sweep=any", f"--sweep_dir={sweep_dir}", "--parallel=2",
             f"--config.data.tfds_dir={tfds_dir}", "--config.train.steps=300",
             "--config.train.checkpoint_every=20"]
    process = subprocess.Popen([sys.executable, "-m", "experiments.sweep", *flags], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = sweep_dir / "opt.lr=0.001,seed=0" / "checkpoints"
    deadline = time.time() + 120
    while not (first.exists() and any(d.isdigit() for d in os.listdir(first))):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(3)  # The orphaned runs get SIGTERM, checkpoint and exit.

    result = run_program("experiments.sweep", *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    assert all(r["status"] == "finished" for r in read_csv(sweep_dir / "results.csv"))
    resumed = json.load(open(sweep_dir / "opt.lr=0.001,seed=0" / "manifest.json"))["sessions"]
    assert len(resumed) == 2 and resumed[1]["start_step"] > 0

    digits_config.train.update(steps=300, checkpoint_every=20)
    digits_config.opt.lr = 0.001
    alone = loop.train_and_evaluate(digits_config, str(tmp_path / "alone"))
    swept = json.load(open(sweep_dir / "opt.lr=0.001,seed=0" / "results.json"))
    assert swept == {k: v for k, v in alone.items() if k != "status"}


def process_training(workdir) -> int | None:
    """The pid of the train process whose --workdir is `workdir`."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "experiments.train" in argv and f"--workdir={workdir}" in argv:
            return int(pid)
    return None


def start_two_run_sweep(tmp_path, tfds_dir, *flags):
    """A sweep over seeds 0 and 1 of long digits runs, started in the background; returns the
    process, the sweep's flags and its two run workdirs."""
    path = write_config(tmp_path, '[{"seed": 0}, {"seed": 1}]')
    sweep_dir = tmp_path / "s"
    flags = [f"--config={path}", "--sweep=any", f"--sweep_dir={sweep_dir}",
             f"--config.data.tfds_dir={tfds_dir}", *flags]
    with open(tmp_path / "sweep.log", "w") as log:  # A file: a pipe nobody reads could fill.
        sweep = subprocess.Popen([sys.executable, "-m", "experiments.sweep", *flags], cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=log)
    return sweep, flags, [sweep_dir / "seed=0", sweep_dir / "seed=1"]


def wait_for_checkpoints(process, workdirs, timeout=180):
    deadline = time.time() + timeout
    while not all((w / "checkpoints").exists() and any(d.isdigit() for d in os.listdir(w / "checkpoints"))
                  for w in workdirs):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the run's process in /proc")
def test_a_run_killed_by_a_signal_is_a_failure_and_the_rerun_completes_it(tmp_path, tfds_dir):
    sweep, flags, (victim, _) = start_two_run_sweep(
        tmp_path, tfds_dir, "--parallel=2", "--config.train.steps=300", "--config.train.checkpoint_every=20")
    sweep_dir = tmp_path / "s"
    wait_for_checkpoints(sweep, [victim])
    os.kill(process_training(str(victim)), signal.SIGKILL)
    sweep.wait(timeout=300)

    assert sweep.returncode == 1, (tmp_path / "sweep.log").read_text()[-2000:]
    status = json.load(open(sweep_dir / "status.json"))
    assert status["seed=0"]["status"] == "failed" and status["seed=0"]["exit"] == "killed by SIGKILL"
    assert status["seed=1"]["status"] == "finished"
    assert [r["status"] for r in read_csv(sweep_dir / "results.csv")] == ["failed", "finished"]

    result = run_program("experiments.sweep", *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    assert all(r["status"] == "finished" for r in read_csv(sweep_dir / "results.csv"))
    sessions = json.load(open(victim / "manifest.json"))["sessions"]
    assert len(sessions) == 2 and sessions[1]["start_step"] > 0


@pytest.mark.parametrize("backend", ["--parallel=2", "--backend=ray"])
def test_a_sweep_stopped_by_sigterm_says_so_and_counts_no_run_as_done(tmp_path, tfds_dir, backend):
    """Locally or on a Ray of its own, SIGTERM stops the running runs within 30 s, each with a
    checkpoint (a Ray task is cancelled, which SIGTERMs its run)."""
    if backend == "--backend=ray":
        pytest.importorskip("ray")
    sweep, _, runs = start_two_run_sweep(tmp_path, tfds_dir, backend, "--config.train.steps=5000",
                                         "--config.train.checkpoint_every=50")
    wait_for_checkpoints(sweep, runs)
    sweep.send_signal(signal.SIGTERM)
    signalled = time.time()
    sweep.wait(timeout=120)
    assert time.time() - signalled < 30
    log = (tmp_path / "sweep.log").read_text()
    assert sweep.returncode == 128 + signal.SIGTERM, log[-2000:]
    assert log.strip().splitlines()[-1] == ("sweep: stopped by SIGTERM: 2 stopped; rerun the same command "
                                            "to resume"), log[-2000:]
    progress = [line for line in log.replace("\r", "\n").splitlines() if line.startswith("sweep any:")]
    assert progress and all(" 0/2 " in line for line in progress), progress[-3:]
    status = json.load(open(tmp_path / "s" / "status.json"))
    assert [status[name]["status"] for name in ("seed=0", "seed=1")] == ["stopped", "stopped"]


@pytest.fixture
def stale_ray_cluster(monkeypatch):
    """/tmp/ray/ray_current_cluster naming a cluster long gone, as a stopped `ray start` leaves
    it (the file as it was is put back afterwards)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    path = "/tmp/ray/ray_current_cluster"
    before = open(path).read() if os.path.exists(path) else None
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("127.0.0.1:6390\n")  # Nothing listens there.
    yield
    if before is None:
        os.remove(path)
    else:
        with open(path, "w") as f:
            f.write(before)


def test_ray_backend_runs_the_sweep_on_a_local_ray_of_its_own(tmp_path, digits_config, capfd,
                                                              stale_ray_cluster):
    """Without --ray_address the sweep starts its own Ray, whatever cluster Ray's files name."""
    pytest.importorskip("ray")
    from research.sweeps.ray_backend import RayBackend

    path = write_config(tmp_path, '[{"seed": 0}, {"seed": 1}]')
    flags = [f"--config.data.tfds_dir={digits_config.data.tfds_dir}", "--config.train.steps=20"]
    digits_config.train.steps = 20
    backend = RayBackend(None, num_cpus=1, local_cpus=2)
    try:
        counts = launch.run_sweep(path, digits_config, flags, "any", str(tmp_path / "s"), backend=backend)
    finally:
        backend.close()
    assert counts == {"finished": 2}
    assert len(read_csv(tmp_path / "s" / "results.csv")) == 2
    assert "Token authentication is enabled" not in capfd.readouterr().err  # Ray on its own default.


def test_a_killed_ray_sweep_leaves_no_process_and_its_runs_checkpoint(tmp_path, tfds_dir):
    """SIGKILL to a sweep on its own local Ray: every process it started ends (Ray's agents
    ignore SIGTERM), and the runs get SIGTERM first, so they save and a rerun resumes them."""
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("ray")
    sweep, _, runs = start_two_run_sweep(tmp_path, tfds_dir, "--backend=ray", "--config.train.steps=3000",
                                         "--config.train.checkpoint_every=50")
    wait_for_checkpoints(sweep, runs)
    started = psutil.Process(sweep.pid).children(recursive=True)
    assert any("raylet" in p.name() for p in started)
    sweep.kill()
    sweep.wait()

    _, alive = psutil.wait_procs(started, timeout=30)  # Left alone, the agents linger 60 s.
    assert not alive, [p.cmdline()[:2] for p in alive]
    for run in runs:
        session = json.load(open(run / "manifest.json"))["sessions"][-1]
        assert session["status"].startswith("stopped by signal 15"), session
        assert not [d for d in os.listdir(run / "checkpoints") if "tmp" in d]


def test_reproduce_confirms_a_run_and_reports_a_difference(tmp_path, digits_config):
    workdir = str(tmp_path / "run")
    loop.train_and_evaluate(digits_config, workdir)
    result = run_program("experiments.reproduce", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "results.json identical: True; final params bitwise identical: True" in result.stdout

    results = json.load(open(f"{workdir}/results.json"))
    results["eval/test/accuracy"] += 0.01
    json.dump(results, open(f"{workdir}/results.json", "w"))
    result = run_program("experiments.reproduce", f"--workdir={workdir}")
    assert result.returncode == 2
    assert "eval/test/accuracy: differs by -0.01" in result.stdout


def test_a_flag_for_a_key_the_sweep_sets_is_refused(tmp_path, digits_config):
    message = r"--config.opt.lr=0.1: sweep 'lr' sets opt.lr in each run; drop the flag"
    with pytest.raises(UserError, match=message):
        launch.expand("configs/digits_mlp.py", "lr", digits_config, ["--config.opt.lr=0.1"], str(tmp_path))
    assert not os.path.exists(tmp_path / "sweep.json")


def test_a_sweep_whose_every_run_failed_writes_no_plot_and_no_warning(tmp_path, recwarn):
    runs = [launch.Run(f"seed={k}", {"seed": k}, str(tmp_path / f"seed={k}"), ()) for k in range(2)]
    status = {run.name: {"status": "failed"} for run in runs}
    rows = report.summarize(runs, status, str(tmp_path), best_metric="eval/test/accuracy", best_mode="max",
                            title="all failed")
    assert [row["status"] for row in rows] == ["failed", "failed"]
    assert not os.path.exists(tmp_path / "plots") and not recwarn.list
    assert "2 failed" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize("key,log_axis", [("opt.lr", True), ("opt.weight_decay", True),
                                          ("train.epochs", False)])
def test_learning_rates_and_weight_decays_are_plotted_on_a_log_axis(key, log_axis, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    points = [(1e-3, 0.8), (3e-3, 0.85), (1e-3, 0.81)]  # A ratio of 3: linear by the data alone.
    plots.metric_against(points, key, "eval/test/accuracy", "unused.png")
    axis = figures[0].axes[0]
    assert (axis.get_xscale() == "log") == log_axis
    if log_axis:
        assert [t.get_text() for t in axis.get_xticklabels()] == ["0.001", "0.003"]
