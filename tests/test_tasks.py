import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from research import tasks
from research.errors import UserError


def lm_batch():
    tokens = jnp.asarray([[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]], jnp.int32)
    return {"tokens": tokens, "token_mask": tokens != 0}


def test_language_model_loss_is_the_mean_over_real_next_tokens():
    batch = lm_batch()
    logits = jax.random.normal(jax.random.key(0), (2, 5, 10))
    loss, task_metrics = tasks.LanguageModeling().loss_and_metrics(logits, batch)
    # Targets: row 0 predicts 5, 6, 7, 3 from positions 0-3; row 1 predicts 8, 3 from 0-1.
    per_token = optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], batch["tokens"][:, 1:])
    expected = (per_token[0].sum() + per_token[1, :2].sum()) / 6
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    assert 0.0 <= float(task_metrics["accuracy"]) <= 1.0


def test_language_model_loss_ignores_padding_positions():
    batch = lm_batch()
    logits = jax.random.normal(jax.random.key(0), (2, 5, 10))
    noisy = logits.at[1, 2:].set(100.0 * jax.random.normal(jax.random.key(1), (3, 10)))
    task = tasks.LanguageModeling()
    np.testing.assert_allclose(task.loss_and_metrics(logits, batch)[0],
                               task.loss_and_metrics(noisy, batch)[0], rtol=1e-6)


def test_language_model_evaluation_skips_padding_rows_and_reports_perplexity():
    batch = dict(lm_batch(), mask=jnp.asarray([True, False]))
    logits = jax.random.normal(jax.random.key(0), (2, 5, 10))
    task = tasks.LanguageModeling()
    sums = task.eval_sums(logits, batch)
    assert int(sums["tokens"]) == 4
    summary, confusion = task.summarize(jax.device_get(sums))
    assert confusion is None
    np.testing.assert_allclose(summary["perplexity"], np.exp(summary["loss"]), rtol=1e-6)


def test_the_model_family_decides_the_task():
    assert isinstance(tasks.for_model("lm", 100), tasks.LanguageModeling)
    classification = tasks.for_model("transformer", 5)
    assert isinstance(classification, tasks.Classification) and classification.num_classes == 5


def test_each_task_declares_the_metrics_its_summary_reports():
    """SUMMARY is what a config's train.best_metric is checked against."""
    confusion = np.array([[3, 1], [0, 4]])
    summary, _ = tasks.Classification(2).summarize({"loss_sum": 2.0, "examples": 8, "confusion": confusion})
    assert tuple(summary) == tasks.Classification.SUMMARY
    summary, _ = tasks.LanguageModeling().summarize({"loss_sum": 2.0, "correct": 3, "tokens": 8})
    assert tuple(summary) == tasks.LanguageModeling.SUMMARY


def test_masked_language_modelling_corrupts_15_percent_of_real_tokens_80_10_10():
    task = tasks.for_model("transformer", 5, "mlm", vocab_size=1000)
    rng = np.random.default_rng(0)
    tokens = rng.integers(4, 1000, (64, 256), dtype=np.int32)
    real = np.arange(256)[None] < rng.integers(32, 257, (64, 1))
    tokens[~real] = 0
    batch = {"tokens": jnp.asarray(tokens), "token_mask": jnp.asarray(real)}
    out = jax.device_get(task.corrupt(batch, jax.random.key(7)))
    chosen, seen = out["mlm_weights"], out["tokens"]
    np.testing.assert_array_equal(out["mlm_targets"], tokens)
    assert not chosen[~real].any()
    assert abs(chosen.sum() / real.sum() - 0.15) < 0.01
    np.testing.assert_array_equal(seen[~chosen], tokens[~chosen])  # Only chosen tokens change.
    masked = seen[chosen] == tasks.MASK_ID
    kept = seen[chosen] == tokens[chosen]
    replaced = ~masked & ~kept
    assert abs(masked.mean() - 0.8) < 0.02 and abs(replaced.mean() - 0.1) < 0.02
    assert (seen[chosen][replaced] >= tasks.FIRST_PIECE_ID).all()  # Never pad, <unk>, BOS or EOS.
    other = jax.device_get(task.corrupt(batch, jax.random.key(8)))["mlm_weights"]
    assert (other != chosen).any()  # Each step's key chooses afresh.
    # Evaluation: chosen by the batch's content, the same every pass.
    first, again = (jax.device_get(task.corrupt(batch)) for _ in range(2))
    np.testing.assert_array_equal(first["tokens"], again["tokens"])
    assert abs(first["mlm_weights"].sum() / real.sum() - 0.15) < 0.01


def test_masked_language_modelling_scores_the_chosen_tokens_only():
    task = tasks.MaskedLanguageModeling(vocab_size=10)
    targets = jnp.array([[5, 6, 7, 8]])
    weights = jnp.array([[True, False, True, False]])
    # Right with certainty at the chosen positions, wrong elsewhere.
    logits = jnp.where(jnp.arange(10)[None, None] == jnp.array([[5, 0, 7, 0]])[..., None], 50.0, 0.0)
    batch = {"mlm_targets": targets, "mlm_weights": weights, "mask": jnp.array([True])}
    loss, train_metrics = task.loss_and_metrics(logits, batch)
    assert float(loss) < 1e-6 and float(train_metrics["accuracy"]) == 1.0
    summary, _ = task.summarize(jax.device_get(task.eval_sums(logits, batch)))
    assert summary["accuracy"] == 1.0 and tuple(summary) == task.SUMMARY
    with pytest.raises(UserError, match="task=mlm pretrains an encoder"):
        tasks.for_model("cnn", 10, "mlm")
