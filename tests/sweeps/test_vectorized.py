"""Vectorized sweep groups: the same loop as single runs, the same files, the same numbers."""

import json
import os

import jax
import numpy as np
import pytest

from research import config as config_lib
from research.errors import UserError
from research.platform.signals import StopRequest
from research.sweeps import launch, vectorized
from research.sweeps.reproduce import final_params
from research.train import loop
from tests.conftest import StopAfterCalls, run_program
from tests.sweeps.test_launch import Progress, write_config

TWO_RUNS = '[{"opt.lr": 0.001, "seed": 0}, {"opt.lr": 0.01, "seed": 2}]'


def train_group(config_path, config, sweep_dir, stop=None):
    with StopRequest() as signals:
        runs = launch.expand(config_path, "any", config, [], sweep_dir)
        launch.claim_sweep_dir(sweep_dir, {"test": True})
        vectorized.train_group(runs, config, sweep_dir, launch.Status(sweep_dir), stop or signals, Progress())
    return runs


def rows(workdir):
    return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]


def assert_close_runs(group_workdir, alone_workdir):
    together = json.load(open(os.path.join(group_workdir, "results.json")))
    alone = json.load(open(os.path.join(alone_workdir, "results.json")))
    assert together["step"] == alone["step"]
    for name in ("eval/test/loss", "eval/test/accuracy", "eval/test/f1"):
        np.testing.assert_allclose(together[name], alone[name], rtol=1e-5, atol=1e-6, err_msg=name)
    group_params, alone_params = final_params(group_workdir), final_params(alone_workdir)
    for a, b in zip(jax.tree.leaves(group_params), jax.tree.leaves(alone_params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_vectorized_runs_match_runs_trained_alone_with_the_same_files(tmp_path, digits_config):
    path = write_config(tmp_path, TWO_RUNS)
    digits_config.train.steps = 30
    runs = train_group(path, digits_config, str(tmp_path / "s"))
    for run in runs:
        alone = str(tmp_path / f"alone_{run.name}")
        loop.train_and_evaluate(config_lib.apply_overrides(digits_config, run.overrides), alone)
        assert_close_runs(run.workdir, alone)
        assert rows(run.workdir)[0]["train/lr"] == pytest.approx(run.overrides["opt.lr"])
        events = lambda w: {f for f in os.listdir(w) if f.startswith("events.")}  # noqa: E731
        assert set(os.listdir(run.workdir)) - events(run.workdir) == set(os.listdir(alone)) - events(alone)
        assert [sorted(r) for r in rows(run.workdir)] == [sorted(r) for r in rows(alone)]
        assert {"perf/examples_per_sec", "perf/step_time_ms"} <= set(rows(run.workdir)[0])
    # Reproduced alone, a vectorized run says how it was trained and agrees to float rounding;
    # the rerun goes beside the sweep directory, not into it.
    reproduced = run_program("experiments.reproduce", f"--workdir={runs[0].workdir}")
    assert reproduced.returncode == 0, reproduced.stdout + reproduced.stderr[-2000:]
    said = "trained vectorized (with 2 runs in one vmapped step) and rerun alone: it agrees"
    assert said in reproduced.stdout
    assert os.path.isfile(tmp_path / "s.reproduced" / runs[0].name / "results.json")
    assert not os.path.exists(f"{runs[0].workdir}.reproduced")


def test_a_stopped_group_resumes_to_the_same_bits(tmp_path, digits_config):
    path = write_config(tmp_path, TWO_RUNS)
    digits_config.train.update(steps=40, checkpoint_every=10, log_every=5)
    uninterrupted = train_group(path, digits_config, str(tmp_path / "whole"))
    stopped = train_group(path, digits_config, str(tmp_path / "resumed"), stop=StopAfterCalls(17))
    assert not os.path.exists(os.path.join(stopped[0].workdir, "results.json"))
    status = json.load(open(tmp_path / "resumed" / "status.json"))
    assert [status[run.name]["status"] for run in stopped] == ["stopped", "stopped"]
    resumed = train_group(path, digits_config, str(tmp_path / "resumed"))
    for a, b in zip(uninterrupted, resumed, strict=True):
        assert json.load(open(f"{a.workdir}/results.json")) == json.load(open(f"{b.workdir}/results.json"))
        assert rows(a.workdir) == [{**r, **{k: v for k, v in ra.items() if k.startswith("perf/")}}
                                   for r, ra in zip(rows(b.workdir), rows(a.workdir), strict=True)]
        for x, y in zip(jax.tree.leaves(final_params(a.workdir)), jax.tree.leaves(final_params(b.workdir)),
                        strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("start", ["init_from", "shrink"])
def test_a_group_takes_steps_per_call_and_starts_from_another_run_like_a_single_run(
        start, tmp_path, digits_config):
    source = str(tmp_path / "source")
    digits_config.train.update(steps=10, eval_every=100, checkpoint_every=100)
    loop.train_and_evaluate(digits_config, source)
    if start == "init_from":
        digits_config.update(init_from=source)
    else:  # Every stacked run starts from the source's kept channels.
        digits_config.model.hidden_sizes = (16,)
        digits_config.shrink.source = source
    digits_config.train.update(steps=9, steps_per_call=4, log_every=8)
    path = write_config(tmp_path, '[{"seed": 3}, {"seed": 4}]')
    for run in train_group(path, digits_config, str(tmp_path / "s")):
        alone = str(tmp_path / f"alone_{run.name}")
        loop.train_and_evaluate(config_lib.apply_overrides(digits_config, run.overrides), alone)
        assert_close_runs(run.workdir, alone)


def test_vectorize_refuses_other_differences(tmp_path, digits_config):
    path = write_config(tmp_path, '[{"model.hidden_sizes": (16,)}, {"model.hidden_sizes": (32,)}]')
    runs = launch.expand(path, "any", digits_config, [], str(tmp_path / "s"))
    with pytest.raises(UserError, match="differ only in"):
        vectorized.train_group(runs, digits_config, str(tmp_path / "s"), None, None, None)
