"""Multi-layer perceptron over flattened inputs."""

from collections.abc import Sequence

import flax.linen as nn
import jax

from research.models.layers import activation


class MLP(nn.Module):
    num_classes: int
    hidden_sizes: Sequence[int] = (128, 64)
    activation: str = "relu"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        act = activation(self.activation)
        x = x_BxHxWxC.reshape(x_BxHxWxC.shape[0], -1)
        for size in self.hidden_sizes:
            x = act(nn.Dense(size)(x))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes)(x)
