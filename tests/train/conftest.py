"""What the training tests share: a long digits run, the reference it is compared with, and the
checks that two runs are the same."""

import functools
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from research.sweeps.reproduce import final_params
from tests.conftest import ROOT, run_program, shared_run

LONG_RUN = ["--config=configs/digits_mlp.py", "--config.train.steps=400",
            "--config.train.checkpoint_every=20", "--config.train.eval_every=100",
            "--config.train.log_every=20"]


def read_json(path):
    with open(path) as f:
        return json.load(f)


def saved_steps(workdir):
    directory = os.path.join(workdir, "checkpoints")
    return sorted(int(d) for d in os.listdir(directory) if d.isdigit()) if os.path.isdir(directory) else []


def assert_same_run(workdir_a, workdir_b):
    """results.json, final params and logged training metrics agree bit for bit."""
    assert read_json(f"{workdir_a}/results.json") == read_json(f"{workdir_b}/results.json")
    for a, b in zip(jax.tree.leaves(final_params(workdir_a)), jax.tree.leaves(final_params(workdir_b)),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    curve = lambda w: [(r["step"], r.get("train/loss"), r.get("eval/test/loss"))
                       for r in map(json.loads, open(f"{w}/metrics.jsonl"))]
    assert curve(workdir_a) == curve(workdir_b)


@pytest.fixture(scope="session")
def uninterrupted(tfds_dir, tmp_path_factory):
    """The long digits run, start to finish in one process: the reference for resumes (one for
    the session, shared by the workers)."""

    def train(workdir):
        result = run_program("experiments.train", *LONG_RUN, f"--workdir={workdir}",
                             f"--config.data.tfds_dir={tfds_dir}")
        assert result.returncode == 0, result.stderr[-3000:]

    return shared_run(tmp_path_factory, "uninterrupted", train)


@pytest.fixture(scope="session")
def digits_cnn_run(tfds_dir, tmp_path_factory):
    """A digits CNN (convolutions and Dense layers) trained 60 steps: a teacher to distil from
    and a run to quantize."""
    from configs import digits_mlp
    from research.train import loop

    config = digits_mlp.get_config("model=cnn")
    config.data.tfds_dir = tfds_dir
    config.train.steps = 60
    return shared_run(tmp_path_factory, "digits_cnn", functools.partial(loop.train_and_evaluate, config))


def start_long_run(workdir, tfds_dir, *flags):
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.train", *LONG_RUN, *flags, f"--workdir={workdir}",
         f"--config.data.tfds_dir={tfds_dir}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(process, workdir, timeout=120):
    deadline = time.time() + timeout
    while not saved_steps(workdir):
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
