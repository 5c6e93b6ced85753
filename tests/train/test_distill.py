"""Distillation: a finished run teaches another inside the one train step; the loss is the
weighted sum it claims to be, and a distilled run resumes exactly."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research import tasks
from research.compress import distill
from research.errors import UserError
from research.sweeps.reproduce import final_params
from research.train import loop
from tests.conftest import StopAfterCalls
from tests.train.conftest import assert_same_run


def test_the_kl_term_is_hintons():
    rng = np.random.default_rng(0)
    student, teacher = (jnp.asarray(rng.normal(size=(6, 5)), jnp.float32) for _ in range(2))
    task = tasks.Classification(5)
    kl = distill.kl_divergence(student, teacher, {}, task, temperature=2.0)
    p = jax.nn.softmax(teacher / 2.0)
    expected = (p * (jnp.log(p) - jax.nn.log_softmax(student / 2.0))).sum(-1).mean()
    np.testing.assert_allclose(kl, expected, rtol=1e-6)
    assert float(distill.kl_divergence(teacher, teacher, {}, task, 2.0)) == pytest.approx(0.0, abs=1e-7)
    # A binary classifier's logit z is the two classes' [0, z].
    z_s, z_t = jnp.array([[0.3], [-1.0]]), jnp.array([[2.0], [0.5]])
    binary = distill.kl_divergence(z_s, z_t, {}, tasks.BinaryClassification(), 1.0)
    two = distill.kl_divergence(jnp.concatenate([0 * z_s, z_s], -1), jnp.concatenate([0 * z_t, z_t], -1),
                                {}, tasks.Classification(2), 1.0)
    np.testing.assert_allclose(binary, two, rtol=1e-6)
    # A language model's: per predicted token, padding left out.
    logits_s, logits_t = (jnp.asarray(rng.normal(size=(2, 4, 7)), jnp.float32) for _ in range(2))
    mask = jnp.array([[True, True, True, True], [True, True, False, False]])
    lm = distill.kl_divergence(logits_s, logits_t, {"token_mask": mask}, tasks.LanguageModeling(), 1.0)
    log_t, log_s = jax.nn.log_softmax(logits_t), jax.nn.log_softmax(logits_s)
    per_token = (jnp.exp(log_t) * (log_t - log_s)).sum(-1)
    np.testing.assert_allclose(lm, (per_token[0, :3].sum() + per_token[1, :1].sum()) / 4, rtol=1e-6)


@pytest.fixture
def teacher(digits_cnn_run):
    """The teacher: tests/train/conftest.py's digits CNN."""
    return digits_cnn_run


def student_config(digits_config, teacher, **distill):
    digits_config.train.update(steps=30, log_every=10, eval_every=30, checkpoint_every=10)
    digits_config.distill.update(teacher=teacher, **distill)
    return digits_config


def test_a_distilled_student_logs_the_kl_and_resumes_exactly(digits_config, teacher, tmp_path, monkeypatch):
    config = student_config(digits_config, teacher, temperature=3.0, alpha=0.7)
    whole = str(tmp_path / "whole")
    loop.train_and_evaluate(config, whole)
    rows = [json.loads(line) for line in open(f"{whole}/metrics.jsonl")]
    train = [row for row in rows if "train/distill_kl" in row]
    assert [row["step"] for row in train] == [10, 20, 30]
    for row in train:  # The logged loss is the weighted sum of the two logged terms (step means).
        weighted = 0.7 * 9.0 * row["train/distill_kl"] + 0.3 * row["train/task_loss"]
        np.testing.assert_allclose(row["train/loss"], weighted, rtol=1e-5)
    assert train[-1]["train/distill_kl"] < train[0]["train/distill_kl"]

    resumed = str(tmp_path / "resumed")
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", lambda **_: StopAfterCalls(12))
        assert loop.train_and_evaluate(config, resumed)["status"] == "stopped"
    loop.train_and_evaluate(config, resumed)
    assert_same_run(whole, resumed)


def test_alpha_zero_is_the_student_alone(digits_config, teacher, tmp_path):
    """With alpha 0 the teacher's term has no weight: the same run as without a teacher."""
    plain = str(tmp_path / "plain")
    digits_config.train.update(steps=10, log_every=5, eval_every=10)
    loop.train_and_evaluate(digits_config, plain)
    digits_config.distill.update(teacher=teacher, alpha=0.0)
    taught = str(tmp_path / "taught")
    loop.train_and_evaluate(digits_config, taught)
    for a, b in zip(jax.tree.leaves(final_params(plain)), jax.tree.leaves(final_params(taught)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_teacher_of_other_data_or_task_is_refused(digits_config, teacher, tmp_path):
    digits_config.distill.teacher = str(tmp_path / "nowhere")
    with pytest.raises(UserError, match="is not the workdir of a run"):
        loop.train_and_evaluate(digits_config, str(tmp_path / "a"))
    digits_config.distill.teacher = teacher
    digits_config.task = "binary"
    digits_config.data.classes = ("0", "1")
    with pytest.raises(UserError, match="a teacher must predict what its student learns"):
        loop.train_and_evaluate(digits_config, str(tmp_path / "b"))
    digits_config.task = "auto"
    with pytest.raises(UserError, match=r"data.classes"):
        loop.train_and_evaluate(digits_config, str(tmp_path / "c"))
