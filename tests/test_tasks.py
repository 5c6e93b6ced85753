import jax
import jax.numpy as jnp
import numpy as np
import optax

from research import tasks


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
