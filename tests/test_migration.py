"""Workdirs of earlier versions: an old config.json is brought up to today's fields when it is
read, so such a run resumes and evaluates; a checkpoint whose train state has another layout is
refused with one line and left where it is."""

import json
import os

import pytest

from research import workdir as workdir_lib
from research.errors import UserError
from research.train import evaluation, loop
from tests.conftest import StopAfterCalls

# Fields a config.json written before them lacks.
LATER_FIELDS = ("task", "prune", "quant", "distill", "log", "train.early_stop_patience",
                "train.profile_steps", "data.in_memory", "data.in_memory_max_gb")


def test_migrate_adds_the_missing_fields_and_keeps_the_others():
    old = {"seed": 3, "train": {"steps": 7}, "prune": {"target_sparsity": 0.5}}
    new = workdir_lib.migrate(old)
    assert new["task"] == "auto" and new["train"] == {"steps": 7, "steps_per_call": 1, "grad_accum_steps": 1,
                                                      "early_stop_patience": 0, "profile_steps": ""}
    assert new["prune"]["target_sparsity"] == 0.5 and new["prune"]["every"] == 100
    assert new["distill"]["teacher"] == "" and new["quant"]["mode"] == ""
    assert old == {"seed": 3, "train": {"steps": 7}, "prune": {"target_sparsity": 0.5}}  # Not changed.


def strip(config_json: dict) -> dict:
    for path in LATER_FIELDS:
        *parents, name = path.split(".")
        section = config_json
        for parent in parents:
            section = section[parent]
        del section[name]
    return config_json


def test_a_run_with_an_old_config_json_resumes_and_evaluates(digits_config, tmp_path):
    digits_config.train.update(steps=20, log_every=10, eval_every=10, checkpoint_every=10)
    workdir = str(tmp_path / "run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "StopRequest", lambda **_: StopAfterCalls(10))
        assert loop.train_and_evaluate(digits_config, workdir)["status"] == "stopped"
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        old = strip(json.load(f))
    with open(path, "w") as f:
        json.dump(old, f)
    results = loop.train_and_evaluate(digits_config, workdir)  # Today's config: the same run.
    assert results["status"] == "finished" and results["step"] == 20
    evaluated = evaluation.evaluate_workdir(workdir, checkpoint_name="latest")
    assert evaluated["eval/test/accuracy"] == results["eval/test/accuracy"]


def test_a_checkpoint_of_another_layout_is_refused_and_kept(digits_config, tmp_path):
    digits_config.train.update(steps=10, log_every=5, eval_every=10, checkpoint_every=5)
    digits_config.prune.update(target_sparsity=0.5, start_step=0, end_step=5, every=5)
    workdir = str(tmp_path / "pruned")
    loop.train_and_evaluate(digits_config, workdir)
    before = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
    digits_config.prune.target_sparsity = 0.0  # Its optimizer state has no masks.
    digits_config.train.steps = 20
    with pytest.raises(UserError, match="another layout"):
        loop.train_and_evaluate(digits_config, workdir, allow_config_change=True)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == before
    assert not os.path.exists(os.path.join(workdir, "checkpoints_corrupt"))
