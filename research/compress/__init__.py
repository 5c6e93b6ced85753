"""Compression methods as transforms of a run's parts.

A run is built from three parts, and a method wraps any of them: the model (quantization-aware
training wraps it with Qwix), the loss (distillation: the teacher's outputs in, KL and task
loss out) and the optimizer (pruning: an optax transformation whose masks live in the
optimizer state). The config selects the methods; research/run/experiment.py applies every
selected one, in the order of METHODS, and the train state, the step and the loop never learn
which. A new method is a module here with a `Method` and one entry in METHODS (or
`register(method)` from your own code), plus its config fields.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import flax.linen as nn
import jax
import optax

from research import tasks
from research.compress import distill, prune, qat


@dataclasses.dataclass(frozen=True)
class Parts:
    """What a method may wrap."""

    model: nn.Module
    loss: tasks.Loss
    tx: optax.GradientTransformation


@dataclasses.dataclass(frozen=True)
class Context:
    """What a method may read besides the config: the run's task and data, its mesh and
    length, and the means to read another run's checkpoint (given by research/run, which
    holds the only Orbax code)."""

    task: tasks.Task
    example_batch: dict  # One row of zeros shaped like the training data.
    num_outputs: int
    vocab_size: int | None
    mesh: jax.sharding.Mesh
    total_steps: int
    # (workdir, "best" | "latest" | step) -> (step, {"params": ..., **model_state}) on the host.
    load_variables: Callable[[str, str], tuple[int, dict]]


class Method(Protocol):
    """A compression method: `name` is its config section."""

    name: str
    vectorizable: bool  # Whether runs stacked in a vectorized sweep group may use it.

    def selected(self, config) -> bool: ...

    def apply(self, config, parts: Parts, context: Context) -> Parts: ...

    def report(self, params, opt_state) -> dict[str, Any]:
        """What the method adds to a finished run's results.json ({}: nothing)."""
        ...

    def tokenizer_source(self, config) -> str:
        """The workdir of a run whose tokenizer this run must read text with ("": none)."""
        ...


METHODS: list[Method] = [qat.METHOD, distill.METHOD, prune.METHOD]


def register(method: Method) -> None:
    """Makes `method` apply to every run whose config selects it."""
    if any(m.name == method.name for m in METHODS):
        raise ValueError(f"compression method {method.name!r} is registered already")
    METHODS.append(method)


def selected(config) -> list[Method]:
    """The methods `config` selects; a config without a method's section selects it not (a run
    older than the method)."""
    return [method for method in METHODS if method.name in config and method.selected(config)]


def tokenizer_source(config) -> str:
    """The run whose tokenizer a selected method needs ("": none)."""
    return next(filter(None, (method.tokenizer_source(config) for method in selected(config))), "")


def apply(config, parts: Parts, context: Context) -> Parts:
    """`parts` wrapped by every method `config` selects."""
    for method in selected(config):
        parts = method.apply(config, parts, context)
    return parts


def reports(config, params, opt_state) -> dict:
    """What the selected methods add to a finished run's results.json."""
    out = {}
    for method in selected(config):
        out.update(method.report(params, opt_state))
    return out
