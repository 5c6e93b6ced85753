"""What a model learns to predict: its loss and train metrics, the sums an evaluation pass
adds up, and the summary made from those sums.

Classification predicts one label an example; language modelling predicts every next token.
The model's family decides which (`for_model`), so a config never states it twice.
"""

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax

from research import metrics, models
from research.data import tokenizer
from research.errors import UserError


class Task:
    """What the step, evaluation, export and distillation ask of a task. A subclass defines
    the loss and its train metrics, the weight a batch carries in gradient accumulation, the
    sums of an evaluation pass and their summary; the rest has defaults."""

    SUMMARY: tuple[str, ...] = ()  # What `summarize` reports, in order.
    # Whether the model predicts a token at every position (logits [B, L, V]) rather than a
    # label an example; such a task reads a text as windows of its token stream.
    predicts_tokens = False

    def loss_and_metrics(self, logits: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        raise NotImplementedError

    def weight(self, batch: dict) -> jax.Array:
        """What the train loss averages over (examples or tokens): microbatches are weighted by it."""
        raise NotImplementedError

    def eval_sums(self, logits: jax.Array, batch: dict) -> dict:
        raise NotImplementedError

    def summarize(self, totals: dict) -> tuple[dict, np.ndarray | None]:
        raise NotImplementedError

    def outputs(self, num_classes: int) -> int:
        """The width of the model's output for data with `num_classes` classes."""
        return num_classes

    def corrupt(self, batch: dict, key: jax.Array | None = None) -> dict:
        """The input the model sees: `batch` itself, unless the task corrupts it (masked
        language modelling); `key` is the step's when training, None when evaluating."""
        return batch

    def class_logits(self, logits: jax.Array) -> jax.Array:
        """Logits over the classes (or tokens) on the last axis, softmax-ready."""
        return logits

    def counted(self, batch: dict) -> jax.Array | None:
        """For a task over tokens, which predictions count, aligned with `predicting`'s
        positions: None when every example counts once."""
        return None

    def predicting(self, per_position: jax.Array) -> jax.Array:
        """The positions of `per_position` [B, L, ...] that make predictions (a language
        model's last position predicts nothing); an example's own value for a classifier."""
        return per_position


class Loss(Protocol):
    """The objective the train step minimises. `frozen` is a pytree of arrays the loss reads
    but does not train (a teacher's variables): the step takes it as an argument, so it is
    neither a constant of the compiled step nor donated. `targets` runs outside the
    differentiated function; its result reaches `__call__` with the model's logits."""

    frozen: Any

    def targets(self, frozen, batch: dict) -> Any: ...

    def __call__(self, logits: jax.Array, batch: dict, targets) -> tuple[jax.Array, dict]: ...


@dataclasses.dataclass(frozen=True)
class TaskLoss:
    """The task's own loss: what a run minimises unless a compression method wraps it."""

    task: Task
    frozen: Any = None

    def targets(self, frozen, batch: dict) -> None:
        return None

    def __call__(self, logits: jax.Array, batch: dict, targets) -> tuple[jax.Array, dict]:
        return self.task.loss_and_metrics(logits, batch)


def _mixed_terms(terms, batch: dict) -> tuple[jax.Array, jax.Array]:
    """`terms(label_B)` -> (loss_B, right_B) for the batch's labels; for a batch mixed by
    mixup or cutmix (research/data/augment.py), both terms weighed by `mix_weight` against
    `mix_label`'s."""
    loss_B, right_B = terms(batch["label"])
    if "mix_weight" not in batch:
        return loss_B, right_B
    weight_B = batch["mix_weight"]
    other_loss_B, other_right_B = terms(batch["mix_label"])
    return (weight_B * loss_B + (1 - weight_B) * other_loss_B,
            weight_B * right_B + (1 - weight_B) * other_right_B)


class Classification(Task):
    """Integer labels `batch["label"]`, logits [B, K]."""

    SUMMARY = ("loss", "accuracy", "precision", "recall", "f1")  # What `summarize` reports.

    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def loss_and_metrics(self, logits_BxK: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        """Cross-entropy; on a mixed batch (mixup, cutmix) against both labels by their weights,
        and accuracy as the weight of the label predicted."""
        def terms(label_B):
            return (optax.softmax_cross_entropy_with_integer_labels(logits_BxK, label_B),
                    logits_BxK.argmax(-1) == label_B)
        loss_B, right_B = _mixed_terms(terms, batch)
        return loss_B.mean(), {"accuracy": right_B.mean()}

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


class TokenPrediction(Task):
    """What a loss over predicted tokens shares: a subclass's `_token_terms(logits, batch)` gives
    per-token losses, whether the argmax is right, and which tokens count; loss and accuracy are
    their means over the counted tokens, and perplexity the exponential of the loss."""

    SUMMARY = ("loss", "perplexity", "accuracy")  # What `summarize` reports.
    predicts_tokens = True

    def _token_terms(self, logits_BxLxV: jax.Array, batch: dict) -> tuple[jax.Array, ...]:
        raise NotImplementedError

    def loss_and_metrics(self, logits_BxLxV: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        losses, correct, weights = self._token_terms(logits_BxLxV, batch)
        tokens = jnp.maximum(weights.sum(), 1)
        return (jnp.where(weights, losses, 0.0).sum() / tokens,
                {"accuracy": (correct & weights).sum() / tokens})

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


class LanguageModeling(TokenPrediction):
    """Next-token prediction over `batch["tokens"]` [B, L] where `batch["token_mask"]` is set;
    logits [B, L, V]. Loss and accuracy are per predicted token."""

    def _token_terms(self, logits_BxLxV: jax.Array, batch: dict) -> tuple[jax.Array, ...]:
        targets_BxT = batch["tokens"][:, 1:]
        weights_BxT = batch["token_mask"][:, 1:]
        if "mask" in batch:  # Padding rows of an evaluation batch.
            weights_BxT = weights_BxT & batch["mask"][:, None]
        losses_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxLxV[:, :-1], targets_BxT)
        correct_BxT = logits_BxLxV[:, :-1].argmax(-1) == targets_BxT
        return losses_BxT, correct_BxT, weights_BxT

    def weight(self, batch: dict) -> jax.Array:
        """What the train loss averages over: the batch's predicted tokens."""
        return jnp.maximum(batch["token_mask"][:, 1:].sum(), 1).astype(jnp.float32)

    def counted(self, batch: dict) -> jax.Array:
        """Positions that predict a real next token [B, L - 1]."""
        return batch["token_mask"][:, 1:]

    def predicting(self, per_position: jax.Array) -> jax.Array:
        return per_position[:, :-1]


class BinaryClassification(Task):
    """Labels 0 and 1, one logit an example [B, 1]: a sigmoid and binary cross-entropy. Reports
    accuracy at probability 0.5, precision, recall and F1 of class 1, and ROC AUC."""

    SUMMARY = ("loss", "accuracy", "precision", "recall", "f1", "roc_auc")
    num_classes = 2
    # ROC AUC from histograms of the predicted probability of each class, which add up over
    # batches, devices and processes like the other sums: written here because it must be a
    # sum (sklearn's roc_auc_score wants every score at once). Ties within a bin of 1/4096
    # count half, as tied scores do.
    BINS = 4096

    def outputs(self, num_classes: int) -> int:
        return 1

    def class_logits(self, logits_Bx1: jax.Array) -> jax.Array:
        """The one logit z as the two classes' logits [0, z]."""
        return jnp.concatenate([jnp.zeros_like(logits_Bx1), logits_Bx1], axis=-1)

    def loss_and_metrics(self, logits_Bx1: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        logit_B = logits_Bx1[:, 0]

        def terms(label_B):
            return (optax.sigmoid_binary_cross_entropy(logit_B, label_B.astype(logit_B.dtype)),
                    (logit_B > 0) == (label_B == 1))
        loss_B, right_B = _mixed_terms(terms, batch)
        return loss_B.mean(), {"accuracy": right_B.mean()}

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


class MaskedLanguageModeling(TokenPrediction):
    """BERT's objective for a bidirectional encoder: of the real tokens of `batch["tokens"]`
    [B, L], each is chosen with probability `rate` (0.15); a chosen token is replaced by the
    mask id (80%), by a random piece (10%) or kept (10%), and the model predicts the original
    tokens at the chosen positions from logits [B, L, V].

    `corrupt` makes the model's input. Training draws the choice from the step's key (so it is
    a function of seed and step, and a batch split into microbatches is masked as a whole);
    evaluation from the batch's own tokens, so a split is masked the same way every time.
    The mask id is the tokenizer's <unk>, which no text produces (its pieces fall back to
    bytes), so it means only "masked" here.
    """

    def __init__(self, vocab_size: int | None, rate: float = 0.15):
        self.vocab_size, self.rate = vocab_size, rate

    def corrupt(self, batch: dict, key: jax.Array | None = None) -> dict:
        """`batch` with its tokens corrupted, plus `mlm_targets` (the original tokens) and
        `mlm_weights` (True at the chosen positions)."""
        tokens_BxL, real_BxL = batch["tokens"], batch["token_mask"]
        if key is None:  # Evaluation: a key from the batch's content.
            position_L = jnp.arange(tokens_BxL.shape[1], dtype=jnp.uint32)
            row_B = jnp.arange(tokens_BxL.shape[0], dtype=jnp.uint32)
            digest = (tokens_BxL.astype(jnp.uint32) * (np.uint32(2654435761) * (position_L + 1))[None]
                      ^ row_B[:, None]).sum(dtype=jnp.uint32)
            key = jax.random.fold_in(jax.random.key(0), digest)
        choose_key, kind_key, random_key = jax.random.split(key, 3)
        chosen_BxL = real_BxL & jax.random.bernoulli(choose_key, self.rate, tokens_BxL.shape)
        kind_BxL = jax.random.uniform(kind_key, tokens_BxL.shape)
        # Random replacements are ordinary pieces: never pad, <unk>, BOS or EOS.
        random_BxL = jax.random.randint(random_key, tokens_BxL.shape, FIRST_PIECE_ID, self.vocab_size,
                                        dtype=tokens_BxL.dtype)
        replaced_BxL = jnp.where(kind_BxL < 0.8, MASK_ID, jnp.where(kind_BxL < 0.9, random_BxL, tokens_BxL))
        return {**batch, "tokens": jnp.where(chosen_BxL, replaced_BxL, tokens_BxL),
                "mlm_targets": tokens_BxL, "mlm_weights": chosen_BxL}

    def _token_terms(self, logits_BxLxV: jax.Array, batch: dict) -> tuple[jax.Array, ...]:
        weights_BxL = batch["mlm_weights"]
        if "mask" in batch:  # Padding rows of an evaluation batch.
            weights_BxL = weights_BxL & batch["mask"][:, None]
        losses_BxL = optax.softmax_cross_entropy_with_integer_labels(logits_BxLxV, batch["mlm_targets"])
        return losses_BxL, logits_BxLxV.argmax(-1) == batch["mlm_targets"], weights_BxL

    def counted(self, batch: dict) -> jax.Array:
        return batch["mlm_weights"]

    def weight(self, batch: dict) -> jax.Array:
        """The chosen tokens of the (corrupted) batch: what the train loss averages over."""
        return jnp.maximum(batch["mlm_weights"].sum(), 1).astype(jnp.float32)


# <unk> stands for the mask; pieces start after EOS.
MASK_ID, FIRST_PIECE_ID = tokenizer.UNK_ID, tokenizer.EOS_ID + 1

TASKS = ("auto", "binary", "mlm")


def for_model(model_name: str, num_classes: int, task: str = "auto", vocab_size: int | None = None) -> Task:
    """The task a model family is trained on (the model registry says which families are
    language models): language modelling for language models, else classification
    (`task="binary"`: one sigmoid output, for two classes; `task="mlm"`: masked language
    modelling of a bidirectional encoder)."""
    if models.is_language_model(model_name):
        return LanguageModeling()
    if task == "mlm":
        if model_name not in models.MLM_MODELS:
            raise UserError(f"task=mlm pretrains an encoder ({', '.join(models.MLM_MODELS)}), "
                            f"not {model_name!r}")
        return MaskedLanguageModeling(vocab_size)
    return BinaryClassification() if task == "binary" else Classification(num_classes)
