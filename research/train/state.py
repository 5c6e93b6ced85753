"""The train state: everything that changes during training, as one pytree."""

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from research.models import model_inputs


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any
    model_state: Any  # Non-trained collections such as batch_stats; {} when the model has none.
    # Pruning (research/train/pruning.py): 0/1 masks shaped like the pruned params; None without.
    masks: Any = None

    @property
    def variables(self) -> dict:
        return {"params": self.params, **self.model_state}


def init_state(model: nn.Module, tx: optax.GradientTransformation, example_batch: dict,
               seed: int) -> TrainState:
    """Initial state from `key(seed)`; pure, so it can be jitted or shape-evaluated.
    `example_batch` gives the inputs' shapes and dtypes (one row is enough)."""
    x, inputs = model_inputs(example_batch)
    # Unboxed: the logical axis names some modules give their parameters only place them
    # (research/parallel/sharding.py); the state holds plain arrays.
    variables = nn.meta.unbox(model.init(jax.random.key(seed), x, **inputs, train=False))
    params = variables.pop("params")
    return TrainState(
        step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
        model_state=dict(variables))
