"""Model families by name; `build` turns a `config.model` into a Flax Linen module.

Adding a family: a module file here defining a Linen module (a dataclass whose fields are its
sizes; `num_classes` and `vocab_size`, if it has them, come from the data), and one entry in
MODELS (or `register(name, cls)` from your own code). A field whose default is a frozen
dataclass (the Transformer families' `config`, a `TransformerConfig`) stands for that
dataclass's fields: `config.model` names them one by one and `build` makes the dataclass from
them. A family's forward pass takes the input of `model_inputs`, keyword inputs such as
`mask`, and `train`.

Images [B, H, W, C]: mlp, cnn, resnet, vit. Signals [B, L, C]: cnn1d, gru (and mlp). Token ids
[B, L] with `mask=`: transformer (a classifier) and lm (a language model).
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from research.errors import UserError
from research.models.cnn import CNN
from research.models.mlp import MLP
from research.models.resnet import ResNet
from research.models.sequence import CNN1D, GRUClassifier
from research.models.transformer import LanguageModel, MaskedLanguageModel, TransformerClassifier
from research.models.vit import ViT

MODELS = {
    "mlp": MLP, "cnn": CNN, "resnet": ResNet, "vit": ViT, "cnn1d": CNN1D, "gru": GRUClassifier,
    "transformer": TransformerClassifier, "lm": LanguageModel,
}


# Families that predict the next token (trained on language modelling, not classification).
LANGUAGE_MODELS = ("lm",)


def is_language_model(name: str) -> bool:
    return name in LANGUAGE_MODELS


def register(name: str, cls) -> None:
    """Makes `model.name=name` build `cls`."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered already")
    MODELS[name] = cls


# Set by the data, not by the config.
DATA_FIELDS = ("num_classes", "vocab_size")


# What `task=mlm` builds for an encoder family: its trunk with a token head.
MLM_MODELS = {"transformer": MaskedLanguageModel}
# Classifier-only fields an MLM leaves unused, so one model config pretrains and fine-tunes.
_CLASSIFIER_ONLY = ("pool",)


def _groups(cls) -> dict:
    """`cls`'s fields that stand for a dataclass's fields (such as `config: TransformerConfig`):
    their names and defaults."""
    return {f.name: f.default for f in dataclasses.fields(cls)
            if dataclasses.is_dataclass(f.default) and not isinstance(f.default, type)}


def config_fields(cls) -> dict:
    """The fields a `config.model` of family class `cls` may set, in order, and their defaults
    (`dataclasses.MISSING` where there is none): its dataclass fields less those the data sets,
    a field holding a config dataclass replaced by that dataclass's fields."""
    groups = _groups(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        if f.name in ("parent", "name", *DATA_FIELDS):
            continue
        if f.name in groups:
            fields.update(dataclasses.asdict(groups[f.name]))
        else:
            fields[f.name] = f.default
    return fields


def build(model_config, num_classes: int, vocab_size: int | None = None, task: str = "auto") -> nn.Module:
    """The module named by `model_config.name`, its other fields as constructor arguments (those
    of a config dataclass such as `TransformerConfig` gathered into it by name).
    `num_classes` goes to models that have that field (not "lm"); `vocab_size`, the
    tokenizer's, is required by models over token ids and ignored by the others. With
    `task="mlm"` an encoder family builds its masked language model."""
    if model_config.name not in MODELS:
        raise UserError(
            f"unknown model {model_config.name!r}; choose one of {sorted(MODELS)} "
            "with --config.model.name")
    cls = MODELS[model_config.name]
    kwargs = {k: v for k, v in model_config.items() if k != "name"}
    if task == "mlm" and model_config.name in MLM_MODELS:
        cls = MLM_MODELS[model_config.name]
        kwargs = {k: v for k, v in kwargs.items() if k not in _CLASSIFIER_ONLY}
    from_data = sorted(set(kwargs) & set(DATA_FIELDS))
    if from_data:
        raise UserError(f"model.{from_data[0]} is set from the data, not the config; remove it")
    all_fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
    fields = set(config_fields(cls))
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise UserError(
            f"model {model_config.name!r} has no field(s) {unknown}; its fields are {sorted(fields)}. "
            f"To switch a config to another family, name it in the config argument "
            f"(--config=FILE.py:model={model_config.name}): the model starts from that family's "
            "defaults, and --config.model.* flags change them")
    for group, default in _groups(cls).items():  # Its fields by name, the family's defaults for the rest.
        kwargs[group] = dataclasses.replace(default, **{k: kwargs.pop(k) for k in dataclasses.asdict(default)
                                                        if k in kwargs})
    if "num_classes" in all_fields:
        kwargs["num_classes"] = num_classes
    if "vocab_size" in all_fields:
        if vocab_size is None:
            raise UserError(f"model {model_config.name!r} reads token ids and needs the tokenizer's "
                            "vocab_size: train it on a text dataset (--config.data.name)")
        kwargs["vocab_size"] = vocab_size
    return cls(**kwargs)


def defaults(name: str) -> dict:
    """Family `name`'s fields and their default values (those the data sets left out): the
    model config a config file starts from when switched to this family."""
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return {k: v for k, v in config_fields(MODELS[name]).items() if v is not dataclasses.MISSING}


def model_inputs(batch: dict[str, jax.Array]) -> tuple[jax.Array, dict]:
    """The model's input and keyword inputs: uint8 images become float32 in [0, 1] on device
    (the host moves 4x fewer bytes), signals pass as they are, token ids come with their
    padding mask (padding is the batch's business; models only respect the mask)."""
    if "image" in batch:
        return batch["image"].astype(jnp.float32) / 255.0, {}
    if "signal" in batch:
        return batch["signal"], {}
    if "features" in batch:  # A vector an example, float32 [B, D].
        return batch["features"], {}
    if "tokens" in batch:
        return batch["tokens"], {"mask": batch["token_mask"]}
    raise ValueError(f"a batch needs image, signal, features or tokens; it has {sorted(batch)}")
