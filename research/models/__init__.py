"""Model families by name; `build` turns a `config.model` into a Flax Linen module."""

import dataclasses

import flax.linen as nn

from research.errors import UserError
from research.models.cnn import CNN
from research.models.mlp import MLP

MODELS = {"mlp": MLP, "cnn": CNN}


def build(model_config, num_classes: int) -> nn.Module:
    """The module named by `model_config.name`, its other fields as constructor arguments."""
    if model_config.name not in MODELS:
        raise UserError(
            f"unknown model {model_config.name!r}; choose one of {sorted(MODELS)} "
            "with --config.model.name")
    cls = MODELS[model_config.name]
    kwargs = {k: v for k, v in model_config.items() if k != "name"}
    fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name", "num_classes"}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise UserError(
            f"model {model_config.name!r} has no field(s) {unknown}; its fields are {sorted(fields)}")
    return cls(num_classes=num_classes, **kwargs)
