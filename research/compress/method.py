"""A compression method and what it wraps: the parts of a run (model, loss, optimizer) and what
it may read besides the config."""

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import optax

from research import tasks


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


class Method:
    """A compression method (subclassed by each): `name` is its config section. `report`,
    `tokenizer_source` and `starts_from` have defaults for methods that add nothing there."""

    name: str
    vectorizable: bool  # Whether runs stacked in a vectorized sweep group may use it.

    def selected(self, config) -> bool:
        raise NotImplementedError

    def apply(self, config, parts: "Parts", context: "Context") -> "Parts":
        raise NotImplementedError

    def report(self, params, opt_state) -> dict[str, Any]:
        """What the method adds to a finished run's results.json."""
        return {}

    def tokenizer_source(self, config) -> str:
        """The workdir of a run whose tokenizer this run must read text with ("": none)."""
        return ""

    def starts_from(self, config) -> str:
        """The workdir of a run whose weights this run starts from instead of its random init
        ("": none); `initial_variables` gives them."""
        return ""

    def initial_variables(self, config, context: "Context", target: dict) -> dict:
        """What the run starts from when `starts_from` names a run: {"params": ...,
        "model_state": ...} of host arrays shaped as `target`'s leaves (abstract, one run's)."""
        raise NotImplementedError
