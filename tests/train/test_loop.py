"""End-to-end behaviour of the training loop and the train/evaluate programs on digits."""

import copy
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from research import workdir as workdir_lib
from research.errors import UserError
from research.sweeps.reproduce import final_params
from research.train import loop
from tests.conftest import ROOT, StopAfterCalls, run_program
from tests.train.conftest import (
    LONG_RUN,
    assert_same_run,
    read_json,
    saved_steps,
    start_long_run,
    wait_for_checkpoint,
)


def test_program_writes_every_artifact(uninterrupted):
    workdir = uninterrupted
    results = read_json(f"{workdir}/results.json")
    assert results["step"] == 400 and results["eval/test/accuracy"] > 0.9
    assert len(results["eval/test/confusion_matrix"]) == 10
    manifest = read_json(f"{workdir}/manifest.json")
    assert manifest["packages"]["jax"] == jax.__version__
    assert manifest["sessions"][-1]["status"] == "finished"
    assert "git_commit" in manifest and manifest["devices"]
    assert read_json(f"{workdir}/config.json")["train"]["steps"] == 400
    rows = [json.loads(line) for line in open(f"{workdir}/metrics.jsonl")]
    assert [r["step"] for r in rows if "train/loss" in r] == list(range(20, 401, 20))
    assert [r["step"] for r in rows if "eval/test/accuracy" in r] == [100, 200, 300, 400]
    assert all("perf/examples_per_sec" in r for r in rows if "train/loss" in r)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(workdir)
    events.Reload()
    assert [e.step for e in events.Scalars("eval/test/accuracy")] == [100, 200, 300, 400]
    assert events.Scalars("eval/test/accuracy")[-1].value == pytest.approx(results["eval/test/accuracy"])
    assert {"learning_curves.png", "confusion_test.png"} <= set(os.listdir(f"{workdir}/plots"))
    saved = saved_steps(workdir)  # The latest 3, plus the best by accuracy if it is older.
    assert saved[-3:] == [360, 380, 400] and len(saved) <= 4


def test_sigkill_at_a_random_moment_then_rerun_matches(uninterrupted, tfds_dir, tmp_path):
    workdir = str(tmp_path / "killed")
    process = start_long_run(workdir, tfds_dir)
    wait_for_checkpoint(process, workdir)
    time.sleep(random.uniform(0.0, 1.0))  # The run takes about 2 s from its first checkpoint.
    process.kill()
    process.wait()
    assert not os.path.exists(f"{workdir}/results.json") or process.returncode == 0
    result = run_program("experiments.train", *LONG_RUN, f"--workdir={workdir}",
                         f"--config.data.tfds_dir={tfds_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(uninterrupted, workdir)


def test_sigterm_saves_and_exits_then_rerun_matches(uninterrupted, tfds_dir, tmp_path):
    workdir = str(tmp_path / "terminated")
    process = start_long_run(workdir, tfds_dir)
    wait_for_checkpoint(process, workdir)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    stopped_at = saved_steps(workdir)[-1]
    assert stopped_at < 400  # Saved where it stopped, wherever that was.
    session = read_json(f"{workdir}/manifest.json")["sessions"][-1]
    assert session["status"].startswith("stopped by signal") and session["end_step"] == stopped_at
    result = run_program("experiments.train", *LONG_RUN, f"--workdir={workdir}",
                         f"--config.data.tfds_dir={tfds_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(uninterrupted, workdir)


def test_multi_step_calls_give_the_same_bits_and_resume_exactly(digits_config, tmp_path, monkeypatch):
    """train.steps_per_call=7, dividing none of the cadences, trains to the same bits as one step
    a call; a run stopped between two calls resumes to them too."""
    digits_config.train.update(steps=60, log_every=20, eval_every=50, checkpoint_every=25)
    single = str(tmp_path / "single")
    loop.train_and_evaluate(digits_config, single)
    config = copy.deepcopy(digits_config)
    config.train.steps_per_call = 7
    multi = str(tmp_path / "multi")
    loop.train_and_evaluate(config, multi)
    assert_same_run(single, multi)

    resumed = str(tmp_path / "resumed")
    # Calls: steps 0-7, 7-14, then one step a call up to the log at 20 (14 + 7 would pass it).
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", lambda **_: StopAfterCalls(3))
        assert loop.train_and_evaluate(config, resumed)["step"] == 15
    loop.train_and_evaluate(config, resumed)
    assert_same_run(single, resumed)


def test_steps_per_call_below_one_is_refused(digits_config, tmp_path):
    digits_config.train.steps_per_call = 0
    with pytest.raises(UserError, match="steps_per_call"):
        loop.train_and_evaluate(digits_config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def corrupt(directory):
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"not a checkpoint")


def test_corrupt_latest_checkpoint_falls_back_and_reproduces(digits_config, tmp_path, caplog):
    workdir = str(tmp_path / "run")
    first = loop.train_and_evaluate(digits_config, workdir)
    assert saved_steps(workdir) == [20, 40, 60]
    corrupt(f"{workdir}/checkpoints/60/state")

    again = loop.train_and_evaluate(digits_config, workdir)

    assert again == first
    assert any("checkpoint 60 is unreadable" in r.getMessage() for r in caplog.records)
    assert os.path.isdir(f"{workdir}/checkpoints_corrupt/60")  # Moved aside, not deleted.
    assert saved_steps(workdir) == [20, 40, 60]


def test_keeps_the_latest_and_the_best(digits_config, tmp_path):
    digits_config.train.update(keep=1, checkpoint_every=10, eval_every=30,
                               best_metric="eval/test/loss", best_mode="max")  # Best = worst loss = step 30.
    workdir = str(tmp_path / "run")
    loop.train_and_evaluate(digits_config, workdir)
    assert saved_steps(workdir) == [30, 60]


def test_a_workdir_of_another_config_is_refused(digits_config, tmp_path):
    workdir = str(tmp_path / "run")
    digits_config.train.steps = 20
    loop.train_and_evaluate(digits_config, workdir)
    before = {name: os.path.getmtime(f"{workdir}/{name}") for name in os.listdir(workdir)}

    digits_config.opt.lr = 0.1
    with pytest.raises(UserError, match=r"different config \(opt.lr: 0.003 -> 0.1\)"):
        loop.train_and_evaluate(digits_config, workdir)
    assert {name: os.path.getmtime(f"{workdir}/{name}") for name in os.listdir(workdir)} == before

    loop.train_and_evaluate(digits_config, workdir, allow_config_change=True)
    assert read_json(f"{workdir}/config.1.json")["opt"]["lr"] == 0.003
    assert read_json(f"{workdir}/config.json")["opt"]["lr"] == 0.1


def test_a_directory_that_is_not_a_workdir_is_refused(digits_config, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty and has no config.json"):
        loop.train_and_evaluate(digits_config, str(tmp_path))
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_non_finite_loss_stops_without_saving(digits_config, tmp_path):
    digits_config.opt.update(name="sgd", lr=1e30)
    workdir = str(tmp_path / "run")
    with pytest.raises(UserError, match="non-finite"):
        loop.train_and_evaluate(digits_config, workdir)
    assert saved_steps(workdir) == []


def test_init_from_starts_with_another_runs_params(digits_config, tmp_path):
    source = str(tmp_path / "source")
    digits_config.train.steps = 20
    loop.train_and_evaluate(digits_config, source)
    digits_config.init_from = source
    digits_config.opt.update(name="sgd", lr=0.0)
    digits_config.train.steps = 1
    warm = str(tmp_path / "warm")
    loop.train_and_evaluate(digits_config, warm)
    for a, b in zip(jax.tree.leaves(final_params(source)), jax.tree.leaves(final_params(warm)), strict=True):
        np.testing.assert_array_equal(a, b)

    digits_config.model.hidden_sizes = (16,)
    with pytest.raises(UserError, match="params/Dense_0/bias has shape \\(32,\\) in .* but \\(16,\\)"):
        loop.train_and_evaluate(digits_config, str(tmp_path / "mismatch"))
    assert not os.path.exists(tmp_path / "mismatch" / "checkpoints")


def test_init_from_loads_matching_parts_and_initialises_the_rest(digits_config, tmp_path):
    """A deeper MLP starts from a shallower one: the layers they share come from the source,
    the extra layer is initialised as usual."""
    source = str(tmp_path / "source")
    digits_config.train.steps = 20
    digits_config.model.update(name="mlp", hidden_sizes=(32,))
    loop.train_and_evaluate(digits_config, source)
    digits_config.model.hidden_sizes = (32, 10)
    digits_config.init_from = source
    digits_config.opt.update(name="sgd", lr=0.0)
    digits_config.train.steps = 1
    loop.train_and_evaluate(digits_config, str(tmp_path / "deeper"))
    source_params, deeper_params = final_params(source), final_params(str(tmp_path / "deeper"))
    np.testing.assert_array_equal(source_params["Dense_0"]["kernel"], deeper_params["Dense_0"]["kernel"])
    np.testing.assert_array_equal(source_params["Dense_1"]["kernel"], deeper_params["Dense_1"]["kernel"])
    assert deeper_params["Dense_2"]["kernel"].shape == (10, 10)


def test_evaluate_program(digits_config, tmp_path):
    workdir = str(tmp_path / "run")
    results = loop.train_and_evaluate(digits_config, workdir)
    result = run_program("experiments.evaluate", f"--workdir={workdir}", "--checkpoint=latest")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = read_json(f"{workdir}/evaluations/step60_test.json")
    assert evaluation["eval/test/accuracy"] == results["eval/test/accuracy"]
    assert os.path.exists(f"{workdir}/plots/confusion_test_step60.png")

    result = run_program("experiments.evaluate", f"--workdir={workdir}", "--checkpoint=7")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: no checkpoint '7'")


def test_missing_dataset_is_one_error_line(tmp_path):
    result = run_program("experiments.train", "--config=configs/fashion_mnist_mlp.py",
                         f"--workdir={tmp_path / 'run'}", "--config.data.source=local",
                         f"--config.data.idx_dir={tmp_path / 'nowhere'}",
                         f"--config.data.tfds_dir={tmp_path / 'tfds'}")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Fashion-MNIST IDX files not found") and "apt-get install" in last


def test_a_second_process_on_a_live_runs_workdir_is_refused(tfds_dir, tmp_path):
    """Refused with one line while the run lives; once it is killed, its lock is gone."""
    workdir = str(tmp_path / "run")
    process = subprocess.Popen(
        [sys.executable, "-m", "experiments.train", *LONG_RUN, "--config.train.steps=20000",
         f"--workdir={workdir}", f"--config.data.tfds_dir={tfds_dir}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_checkpoint(process, workdir)
        second = run_program("experiments.train", *LONG_RUN, "--config.train.steps=20000",
                             f"--workdir={workdir}", f"--config.data.tfds_dir={tfds_dir}")
        assert second.returncode == 1, second.stderr[-2000:]
        assert "is in use by a live run" in second.stderr.strip().splitlines()[-1]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    program = f"from research import workdir\nwith workdir.exclusive({workdir!r}): print('held')"
    taken = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
    assert taken.stdout.strip() == "held", taken.stderr[-2000:]


def test_early_stopping_stops_on_the_watched_metric_and_resumes_to_the_same_stop(
        digits_config, tmp_path, monkeypatch):
    """lr=0: the first evaluation is the best there will be, so patience 2 stops two evaluations
    later; a run stopped before then resumes to the same early stop, and a rerun trains no more."""
    digits_config.opt.lr = 0.0
    digits_config.train.update(steps=100, eval_every=10, checkpoint_every=10, log_every=5,
                               early_stop_patience=2)
    whole = str(tmp_path / "whole")
    results = loop.train_and_evaluate(digits_config, whole)
    assert results["status"] == "finished" and results["step"] == 30
    stopped = read_json(f"{whole}/results.json")["early_stopped"]
    assert stopped["step"] == 30 and stopped["best_step"] == 10
    assert stopped["reason"].startswith("eval/test/accuracy has not improved on ")
    assert saved_steps(whole)[-1] == 30
    loop.train_and_evaluate(digits_config, whole)  # A rerun of the finished run trains no further.
    assert [s["end_step"] for s in read_json(f"{whole}/manifest.json")["sessions"]] == [30, 30]

    resumed = str(tmp_path / "resumed")
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", lambda **_: StopAfterCalls(25))
        assert loop.train_and_evaluate(digits_config, resumed)["status"] == "stopped"
    loop.train_and_evaluate(digits_config, resumed)
    assert read_json(f"{resumed}/results.json") == read_json(f"{whole}/results.json")


def test_profile_steps_writes_a_trace_of_those_steps(digits_config, tmp_path):
    digits_config.train.update(steps=12, profile_steps="4:8")
    loop.train_and_evaluate(digits_config, str(tmp_path / "run"))
    traces = glob.glob(f"{tmp_path}/run/profile/**/*.xplane.pb", recursive=True)
    assert len(traces) == 1 and os.path.getsize(traces[0]) > 0
    assert glob.glob(f"{tmp_path}/run/profile/**/perfetto_trace.json.gz", recursive=True)
    digits_config.train.profile_steps = "8:4"
    with pytest.raises(UserError, match=r"train.profile_steps='8:4'; write START:END"):
        loop.train_and_evaluate(digits_config, str(tmp_path / "bad"))


def test_eval_max_batches_caps_every_evaluation_and_results_say_so(digits_config, tmp_path):
    digits_config.train.update(steps=10, eval_every=5, checkpoint_every=10)
    digits_config.eval.update(batch_size=64, max_batches=2)
    results = loop.train_and_evaluate(digits_config, str(tmp_path / "capped"))
    assert results["eval_max_batches"] == 2
    assert np.sum(results["eval/test/confusion_matrix"]) == 128  # Two batches of the test split.
    digits_config.eval.max_batches = 0
    whole = loop.train_and_evaluate(digits_config, str(tmp_path / "whole"))
    assert "eval_max_batches" not in whole and np.sum(whole["eval/test/confusion_matrix"]) > 128
    # Capped during training only: step 5 reads one batch, the last evaluation the whole split.
    digits_config.eval.periodic_max_batches = 1
    periodic = loop.train_and_evaluate(digits_config, str(tmp_path / "periodic"))
    assert periodic["eval/test/confusion_matrix"] == whole["eval/test/confusion_matrix"]
    assert periodic["eval/test/loss"] == whole["eval/test/loss"] and "eval_max_batches" not in periodic

    def eval_loss(workdir, step):
        rows = [json.loads(line) for line in open(f"{workdir}/metrics.jsonl")]
        [row] = [r for r in rows if r["step"] == step and "eval/test/loss" in r]
        return row["eval/test/loss"]

    assert eval_loss(tmp_path / "periodic", 5) != eval_loss(tmp_path / "whole", 5)
    assert eval_loss(tmp_path / "periodic", 10) == eval_loss(tmp_path / "whole", 10)


def test_sessions_started_within_one_second_each_keep_their_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(workdir_lib, "now", lambda: "2026-12-07T15:00:00+00:00")
    first, second = ({"id": name, "started": workdir_lib.now(), "status": "running"} for name in "ab")
    workdir_lib.record_session(str(tmp_path), first)
    workdir_lib.record_session(str(tmp_path), {**first, "status": "stopped by signal 15"})
    workdir_lib.record_session(str(tmp_path), second)
    sessions = read_json(f"{tmp_path}/manifest.json")["sessions"]
    assert [(s["id"], s["status"]) for s in sessions] == [("a", "stopped by signal 15"), ("b", "running")]


def test_a_session_still_running_when_the_next_starts_is_recorded_as_lost(tmp_path):
    second = {"id": "b", "started": "t1", "start_step": 40}
    workdir_lib.record_session(str(tmp_path), {"id": "a", "started": "t0", "status": "running"})
    workdir_lib.record_session(str(tmp_path), {**second, "status": "running"})
    workdir_lib.record_session(str(tmp_path), {**second, "status": "finished"})
    first, second = read_json(f"{tmp_path}/manifest.json")["sessions"]
    assert first["status"] == "lost" and "the next session, b, started t1 from step 40" in first["lost"]
    assert second["status"] == "finished"
