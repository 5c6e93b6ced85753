"""Every metric's home: classification pieces computed on device and their summaries, the
optimizer's metrics, the loop's speed, and the names they are logged under (train/<name>,
eval/<split>/<name>, perf/<name>). A task (research/tasks.py) decides which of them its
loss comes with."""

import jax
import jax.numpy as jnp
import numpy as np
import optax


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


def roc_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the ROC curve from counts of each class's scores in ascending bins: the
    chance that a positive scores above a negative, ties counting half. NaN without both."""
    positives, negatives = positives.astype(np.float64), negatives.astype(np.float64)
    if not positives.sum() or not negatives.sum():
        return float("nan")
    negatives_below = np.cumsum(negatives) - negatives
    pairs = (positives * (negatives_below + 0.5 * negatives)).sum()
    return float(pairs / (positives.sum() * negatives.sum()))


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


def optimizer_metrics(grads, learning_rate: jax.Array) -> dict[str, jax.Array]:
    """Logged with every train step: the gradient's global norm and the step's learning rate."""
    return {"grad_norm": optax.global_norm(grads), "lr": learning_rate}


def perf(steps: int, batch_size: int, seconds: float) -> dict[str, float]:
    """The loop's speed over `steps` steps of `batch_size` examples that took `seconds`."""
    return {"perf/examples_per_sec": steps * batch_size / seconds if steps else 0.0,
            "perf/step_time_ms": 1000 * seconds / max(steps, 1)}


def named_train(summary: dict) -> dict:
    return {f"train/{k}": v for k, v in summary.items()}


def named_eval(summary: dict, split_name: str, confusion: np.ndarray | None = None) -> dict:
    """Evaluation metrics under their logged names, eval/<split>/<metric>, with the confusion
    matrix as a nested list when given."""
    result = {f"eval/{split_name}/{k}": v for k, v in summary.items()}
    if confusion is not None:
        result[f"eval/{split_name}/confusion_matrix"] = confusion.tolist()
    return result
