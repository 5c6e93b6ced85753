"""Binary classification (task=binary): one sigmoid output and binary cross-entropy, with
precision, recall and F1 of class 1 and ROC AUC; the toy MLP seed config on two moons learns
it and draws plots/predictions.png."""

import os

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from configs import digits_mlp, toy_mlp
from research import tasks
from research.errors import UserError
from research.train import loop


def test_the_binary_summary_is_sklearns():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300).astype(np.int32)
    logits = rng.normal(size=300) + 1.5 * labels
    task = tasks.BinaryClassification()
    sums = task.eval_sums(jnp.asarray(logits[:, None], jnp.float32),
                          {"label": jnp.asarray(labels), "mask": jnp.ones(300, bool)})
    summary, confusion = task.summarize(sums)
    predicted = (logits > 0).astype(int)
    assert summary["accuracy"] == pytest.approx((predicted == labels).mean())
    assert summary["precision"] == pytest.approx(precision_score(labels, predicted))
    assert summary["recall"] == pytest.approx(recall_score(labels, predicted))
    assert summary["f1"] == pytest.approx(f1_score(labels, predicted))
    assert summary["roc_auc"] == pytest.approx(roc_auc_score(labels, logits), abs=2e-3)  # 4,096 bins.
    assert confusion.sum() == 300


def test_the_toy_mlp_learns_two_moons_and_draws_its_boundary(tfds_dir, tmp_path):
    config = toy_mlp.get_config()
    config.data.tfds_dir = tfds_dir
    config.train.update(epochs=0.0, steps=600, eval_every=600)
    results = loop.train_and_evaluate(config, str(tmp_path / "toy"))
    assert results["eval/test/accuracy"] > 0.85 and results["eval/test/roc_auc"] > 0.9, results
    assert os.path.getsize(tmp_path / "toy" / "plots" / "predictions.png") > 10_000


def test_binary_needs_two_classes(tfds_dir, tmp_path):
    config = digits_mlp.get_config()
    config.data.tfds_dir = tfds_dir
    config.task = "binary"
    with pytest.raises(UserError, match="task=binary needs two classes; 'digits' has 10"):
        loop.train_and_evaluate(config, str(tmp_path / "run"))
