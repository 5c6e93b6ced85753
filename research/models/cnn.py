"""Convolutional classifier: [conv-act-pool] per conv stage, then dense layers."""

from collections.abc import Sequence

import flax.linen as nn
import jax

from research.models.layers import activation, max_pool_2x2


class CNN(nn.Module):
    num_classes: int
    conv_features: Sequence[int] = (32, 64)
    kernel_size: int = 3
    dense_sizes: Sequence[int] = (128,)
    activation: str = "relu"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        act = activation(self.activation)
        x = x_BxHxWxC
        for features in self.conv_features:
            x = act(nn.Conv(features, (self.kernel_size, self.kernel_size))(x))
            x = max_pool_2x2(x)
        x = x.reshape(x.shape[0], -1)
        for size in self.dense_sizes:
            x = act(nn.Dense(size)(x))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes)(x)
