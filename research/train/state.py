"""The train state: everything that changes during training, as one pytree."""

from typing import Any

import flax
import flax.linen as nn
import jax
import optax

from research.run import experiment


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any
    model_state: Any  # Non-trained collections such as batch_stats; {} when the model has none.

    @property
    def variables(self) -> dict:
        return {"params": self.params, **self.model_state}


def init_state(model: nn.Module, tx: optax.GradientTransformation, example_batch: dict,
               seed: int) -> TrainState:
    """Initial state from `key(seed)`; pure, so it can be jitted or shape-evaluated.
    `example_batch` gives the inputs' shapes and dtypes (one row is enough)."""
    return TrainState(**experiment.initial_fields(model, tx, example_batch, seed))


def initial_state(exp: experiment.Experiment, seed: int) -> TrainState:
    """The state at step 0, made on the devices directly in its layout (sharding.state_shardings):
    no device or host ever holds the whole model."""
    example = experiment.example_batch(exp)
    layout = experiment.field_shardings(exp.model, exp.tx, example, seed, exp.mesh)
    return jax.jit(lambda: init_state(exp.model, exp.tx, example, seed), out_shardings=TrainState(**layout))()
