"""Text runs: the tokenizer travels with the run, a classifier starts from a language model's
trunk, and experiments.generate samples from a language-model run."""

import filecmp
import json
import os

import jax
import numpy as np
import pytest

from research.errors import UserError
from research.serve import generate
from research.sweeps.reproduce import final_params
from research.train import loop
from tests.conftest import run_program
from tests.test_families import tiny_config


@pytest.fixture(scope="module")
def lm_workdir(tfds_dir, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("lm") / "run")
    loop.train_and_evaluate(tiny_config("lm", tfds_dir), workdir)
    return workdir


def test_classifier_starts_from_the_language_models_trunk(lm_workdir, tfds_dir, tmp_path):
    config = tiny_config("transformer", tfds_dir)
    config.model.update(causal=True, pool="mean")
    config.init_from = lm_workdir
    config.opt.update(name="sgd", lr=0.0, weight_decay=0.0)
    config.train.steps = 1
    workdir = str(tmp_path / "finetuned")
    loop.train_and_evaluate(config, workdir)

    lm, classifier = final_params(lm_workdir), final_params(workdir)
    for a, b in zip(jax.tree.leaves(lm["trunk"]), jax.tree.leaves(classifier["trunk"]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert "classifier_head" in classifier and "lm_head" not in classifier
    assert filecmp.cmp(f"{lm_workdir}/tokenizer.model", f"{workdir}/tokenizer.model", shallow=False)


def test_classifier_of_another_width_is_refused(lm_workdir, tfds_dir, tmp_path):
    config = tiny_config("transformer", tfds_dir)
    config.model.hidden = 8
    config.init_from = lm_workdir
    with pytest.raises(UserError, match="init_from: params/trunk/.* has shape"):
        loop.train_and_evaluate(config, str(tmp_path / "wider"))
    assert not os.path.exists(tmp_path / "wider")


def test_generation_is_seeded_and_continues_the_prompt(lm_workdir):
    sample = lambda seed: generate.generate(  # noqa: E731
        lm_workdir, "The government", max_new_tokens=8, temperature=1.0, top_k=0, seed=seed,
        num_samples=2)
    first = sample(0)
    assert len(first) == 2 and all(isinstance(text, str) for text in first)
    assert first == sample(0)
    assert first != sample(1)


def test_generate_program(lm_workdir, tmp_path):
    result = run_program("experiments.generate", f"--workdir={lm_workdir}", "--prompt=Shares in",
                         "--max_new_tokens=5", "--temperature=0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("Shares in")

    result = run_program("experiments.generate", f"--workdir={tmp_path}", "--prompt=x")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_evaluating_a_language_model_run_reads_its_tokenizer(lm_workdir):
    from research.train import evaluation

    results = evaluation.evaluate_workdir(lm_workdir, checkpoint_name="latest")
    with open(f"{lm_workdir}/results.json") as f:
        trained = json.load(f)
    assert results["eval/test/perplexity"] == trained["eval/test/perplexity"]
    assert "eval/test/confusion_matrix" not in results


def test_a_masked_language_model_pretrains_the_encoder_a_classifier_fine_tunes(tfds_dir, tmp_path):
    """task=mlm trains the bidirectional trunk with a token head (its MLM loss falls); the
    encoder classifier (`:model=encoder`) started from it inherits the trunk, not the head."""
    from configs import bbc_news
    from research import config as config_lib
    from tests.test_families import TINY_TEXT

    def tiny(model):
        config = config_lib.apply_overrides(bbc_news.get_config(f"model={model}"),
                                            {f"model.{k}": v for k, v in TINY_TEXT.items()})
        config.data.update(tfds_dir=tfds_dir, batch_size=16, vocab_size=400, max_len=64)
        config.train.update(steps=20, log_every=5, eval_every=20, epochs=0.0)
        config.opt.update(lr=3e-3, warmup_steps=0)
        config.mesh.num_devices = 1
        return config

    mlm = str(tmp_path / "mlm")
    results = loop.train_and_evaluate(tiny("mlm"), mlm)
    losses = [row["train/loss"] for row in map(json.loads, open(f"{mlm}/metrics.jsonl"))
              if "train/loss" in row]
    assert losses[-1] < losses[0] - 0.3 and results["eval/test/perplexity"] < 400  # Below a uniform guess.
    assert "mlm_head" in final_params(mlm)

    config = tiny("encoder")
    assert config.model.name == "transformer" and not config.model.causal and config.task == "auto"
    config.init_from = mlm
    config.opt.update(name="sgd", lr=0.0, weight_decay=0.0)
    config.train.steps = 1
    loop.train_and_evaluate(config, str(tmp_path / "encoder"))
    pretrained, classifier = final_params(mlm), final_params(str(tmp_path / "encoder"))
    for a, b in zip(jax.tree.leaves(pretrained["trunk"]), jax.tree.leaves(classifier["trunk"]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert "classifier_head" in classifier and "mlm_head" not in classifier
