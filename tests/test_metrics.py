import json

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as sk

from research import metrics


@pytest.mark.parametrize("seed", [0, 1])
def test_summary_matches_sklearn_macro_averages(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, size=300)
    predictions = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 4, size=300))  # 4 never predicted.
    confusion = sk.confusion_matrix(labels, predictions, labels=range(5))

    summary = metrics.classification_summary(confusion)

    assert summary["accuracy"] == pytest.approx(sk.accuracy_score(labels, predictions))
    for name, fn in [("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)]:
        expected = fn(labels, predictions, labels=range(5), average="macro", zero_division=0)
        assert summary[name] == pytest.approx(expected), name


def test_confusion_matrix_counts_only_masked_rows():
    labels = jnp.array([0, 1, 2, 2, 1, 0])
    predictions = jnp.array([0, 2, 2, 1, 1, 1])
    mask = jnp.array([True, True, True, True, False, False])

    confusion = metrics.confusion_matrix(labels, predictions, mask, num_classes=3)

    np.testing.assert_array_equal(confusion, sk.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 1], labels=range(3)))


def test_mean_over_steps_is_the_same_from_device_or_json():
    values = [jnp.float32(0.1), jnp.float32(0.7), jnp.float32(1 / 3)]
    from_device = metrics.to_host([{"loss": v} for v in values])
    from_json = json.loads(json.dumps(from_device))
    assert metrics.mean_over_steps(from_device) == metrics.mean_over_steps(from_json)
    assert metrics.mean_over_steps(from_json)["loss"] == pytest.approx((0.1 + 0.7 + 1 / 3) / 3)


def test_to_host_unstacks_multi_step_metrics():
    stacked = {"loss": jnp.asarray([0.5, 0.25], jnp.float32), "accuracy": jnp.asarray([0.0, 1.0])}
    single = {"loss": jnp.float32(0.125), "accuracy": jnp.float32(0.5)}
    assert metrics.to_host([stacked, single]) == [
        {"loss": 0.5, "accuracy": 0.0}, {"loss": 0.25, "accuracy": 1.0}, {"loss": 0.125, "accuracy": 0.5}]


def test_roc_auc_from_histograms_is_sklearns_and_counts_ties_half():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    bins = rng.integers(0, 4096, 500) + 40 * labels  # Positives score a little higher.
    bins = np.minimum(bins, 4095)
    histogram = lambda label: np.bincount(bins[labels == label], minlength=4096)  # noqa: E731
    expected = sk.roc_auc_score(labels, bins)
    assert metrics.roc_auc(histogram(1), histogram(0)) == pytest.approx(expected, abs=1e-12)
    assert metrics.roc_auc(np.array([0, 2]), np.array([0, 2])) == 0.5  # All tied.
    assert np.isnan(metrics.roc_auc(np.array([0, 2]), np.array([0, 0])))
