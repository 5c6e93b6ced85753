"""What a model learns to predict: its loss and train metrics, the sums an evaluation pass
adds up, and the summary made from those sums.

Classification predicts one label an example; language modelling predicts every next token.
The model's family decides which (`for_model`), so a config never states it twice.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from research import metrics

LANGUAGE_MODELS = {"lm"}


class Classification:
    """Integer labels `batch["label"]`, logits [B, K]."""

    SUMMARY = ("loss", "accuracy", "precision", "recall", "f1")  # What `summarize` reports.

    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def loss_and_metrics(self, logits_BxK: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        loss = optax.softmax_cross_entropy_with_integer_labels(logits_BxK, batch["label"]).mean()
        return loss, {"accuracy": (logits_BxK.argmax(-1) == batch["label"]).mean()}

    def weight(self, batch: dict) -> jax.Array:
        """What the train loss averages over: the batch's examples."""
        return jnp.asarray(batch["label"].shape[0], jnp.float32)

    def eval_sums(self, logits_BxK: jax.Array, batch: dict) -> dict:
        """Sums over the batch's real rows (`batch["mask"]`): loss and the confusion matrix."""
        losses_B = optax.softmax_cross_entropy_with_integer_labels(logits_BxK, batch["label"])
        return {
            "loss_sum": jnp.where(batch["mask"], losses_B, 0.0).sum(),
            "examples": batch["mask"].sum(),
            "confusion": metrics.confusion_matrix(
                batch["label"], logits_BxK.argmax(-1), batch["mask"], self.num_classes),
        }

    def summarize(self, totals: dict) -> tuple[dict, np.ndarray]:
        """Loss, accuracy, macro precision/recall/F1, and the confusion matrix."""
        confusion = np.asarray(totals["confusion"])
        summary = {"loss": float(totals["loss_sum"]) / int(totals["examples"]),
                   **metrics.classification_summary(confusion)}
        return summary, confusion


class LanguageModeling:
    """Next-token prediction over `batch["tokens"]` [B, L] where `batch["token_mask"]` is set;
    logits [B, L, V]. Loss and accuracy are per predicted token."""

    SUMMARY = ("loss", "perplexity", "accuracy")  # What `summarize` reports.

    def _token_terms(self, logits_BxLxV: jax.Array, batch: dict) -> tuple[jax.Array, ...]:
        targets_BxT = batch["tokens"][:, 1:]
        weights_BxT = batch["token_mask"][:, 1:]
        if "mask" in batch:  # Padding rows of an evaluation batch.
            weights_BxT = weights_BxT & batch["mask"][:, None]
        losses_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxLxV[:, :-1], targets_BxT)
        correct_BxT = logits_BxLxV[:, :-1].argmax(-1) == targets_BxT
        return losses_BxT, correct_BxT, weights_BxT

    def loss_and_metrics(self, logits_BxLxV: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        losses, correct, weights = self._token_terms(logits_BxLxV, batch)
        tokens = jnp.maximum(weights.sum(), 1)
        return (jnp.where(weights, losses, 0.0).sum() / tokens,
                {"accuracy": (correct & weights).sum() / tokens})

    def weight(self, batch: dict) -> jax.Array:
        """What the train loss averages over: the batch's predicted tokens."""
        return jnp.maximum(batch["token_mask"][:, 1:].sum(), 1).astype(jnp.float32)

    def eval_sums(self, logits_BxLxV: jax.Array, batch: dict) -> dict:
        losses, correct, weights = self._token_terms(logits_BxLxV, batch)
        return {"loss_sum": jnp.where(weights, losses, 0.0).sum(), "correct": (correct & weights).sum(),
                "tokens": weights.sum()}

    def summarize(self, totals: dict) -> tuple[dict, None]:
        """Loss and accuracy per predicted token, and perplexity; no confusion matrix."""
        tokens = max(int(totals["tokens"]), 1)
        loss = float(totals["loss_sum"]) / tokens
        return {"loss": loss, "perplexity": float(np.exp(loss)),
                "accuracy": int(totals["correct"]) / tokens}, None


class BinaryClassification:
    """Labels 0 and 1, one logit an example [B, 1]: a sigmoid and binary cross-entropy. Reports
    accuracy at probability 0.5, precision, recall and F1 of class 1, and ROC AUC."""

    SUMMARY = ("loss", "accuracy", "precision", "recall", "f1", "roc_auc")
    num_classes = 2
    outputs = 1
    # ROC AUC from histograms of the predicted probability of each class, which add up over
    # batches, devices and processes like the other sums: written here because it must be a
    # sum (sklearn's roc_auc_score wants every score at once). Ties within a bin of 1/4096
    # count half, as tied scores do.
    BINS = 4096

    def loss_and_metrics(self, logits_Bx1: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        logit_B, label_B = logits_Bx1[:, 0], batch["label"]
        loss = optax.sigmoid_binary_cross_entropy(logit_B, label_B.astype(logit_B.dtype)).mean()
        return loss, {"accuracy": ((logit_B > 0) == (label_B == 1)).mean()}

    def weight(self, batch: dict) -> jax.Array:
        return jnp.asarray(batch["label"].shape[0], jnp.float32)

    def eval_sums(self, logits_Bx1: jax.Array, batch: dict) -> dict:
        logit_B, label_B, mask_B = logits_Bx1[:, 0], batch["label"], batch["mask"]
        losses_B = optax.sigmoid_binary_cross_entropy(logit_B, label_B.astype(logit_B.dtype))
        bin_B = jnp.clip((jax.nn.sigmoid(logit_B) * self.BINS).astype(jnp.int32), 0, self.BINS - 1)
        histogram = lambda rows_B: jnp.zeros(self.BINS, jnp.int32).at[bin_B].add(rows_B)  # noqa: E731
        return {
            "loss_sum": jnp.where(mask_B, losses_B, 0.0).sum(),
            "examples": mask_B.sum(),
            "confusion": metrics.confusion_matrix(label_B, (logit_B > 0).astype(label_B.dtype), mask_B, 2),
            "positives": histogram(mask_B & (label_B == 1)),
            "negatives": histogram(mask_B & (label_B == 0)),
        }

    def summarize(self, totals: dict) -> tuple[dict, np.ndarray]:
        confusion = np.asarray(totals["confusion"], np.int64)
        (true_negatives, false_positives), (false_negatives, true_positives) = confusion
        precision = true_positives / max(true_positives + false_positives, 1)
        recall = true_positives / max(true_positives + false_negatives, 1)
        summary = {
            "loss": float(totals["loss_sum"]) / int(totals["examples"]),
            "accuracy": float((true_positives + true_negatives) / max(confusion.sum(), 1)),
            "precision": float(precision), "recall": float(recall),
            "f1": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0,
            "roc_auc": metrics.roc_auc(np.asarray(totals["positives"]), np.asarray(totals["negatives"])),
        }
        return summary, confusion


TASKS = ("auto", "binary")


def for_model(model_name: str, num_classes: int, task: str = "auto"):
    """The task a model family is trained on: language modelling for language models, else
    classification (`task="binary"`: one sigmoid output, for two classes)."""
    if model_name in LANGUAGE_MODELS:
        return LanguageModeling()
    return BinaryClassification() if task == "binary" else Classification(num_classes)
