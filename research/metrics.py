"""Classification metrics: per-batch pieces computed on device, summaries on the host."""

import jax
import jax.numpy as jnp
import numpy as np


def confusion_matrix(labels: jax.Array, predictions: jax.Array, mask: jax.Array,
                     num_classes: int) -> jax.Array:
    """[true class, predicted class] counts of the rows where `mask` is set."""
    counts = jnp.zeros((num_classes, num_classes), jnp.int32)
    return counts.at[labels, predictions].add(mask.astype(jnp.int32))


def classification_summary(confusion: np.ndarray) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 from a confusion matrix.

    Matches sklearn's macro averages with zero_division=0: a class never predicted has
    precision 0, a class never present has recall 0.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positives = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=predicted > 0)
    recall = np.divide(true_positives, actual, out=np.zeros_like(true_positives), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return {
        "accuracy": float(true_positives.sum() / max(confusion.sum(), 1)),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
    }


def to_host(step_metrics: list[dict]) -> list[dict[str, float]]:
    """Metric dicts, each one step's scalars or several steps' stacked along a leading axis
    (a multi-step call's), as one dict of Python floats a step (one device fetch for all)."""
    per_step = []
    for m in jax.device_get(step_metrics):
        columns = {name: np.asarray(value) for name, value in m.items()}
        first = next(iter(columns.values()))
        if first.ndim == 0:
            per_step.append({name: float(value) for name, value in columns.items()})
        else:
            per_step.extend({name: float(value[i]) for name, value in columns.items()}
                            for i in range(len(first)))
    return per_step


def mean_over_steps(step_metrics: list[dict[str, float]]) -> dict[str, float]:
    """Means in float64 of host per-step metrics: the same bits whether the values came from
    the device or from a checkpoint's JSON."""
    return {name: float(np.mean(np.asarray([m[name] for m in step_metrics], np.float64)))
            for name in step_metrics[0]}
