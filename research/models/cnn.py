"""Convolutional classifier: [conv-(BatchNorm)-act-pool] per conv stage, then dense layers.

The defaults (32 and 64 3x3 filters, 2x2 max pools, one 128-unit dense layer) are a small
MNIST-sized CNN: 28x28 inputs reach the dense layers as 7x7x64.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from research.models.layers import activation, batch_norm, max_pool_2x2


class CNN(nn.Module):
    num_classes: int
    conv_features: Sequence[int] = (32, 64)
    kernel_size: int = 3
    dense_sizes: Sequence[int] = (128,)
    activation: str = "relu"
    dropout: float = 0.0
    batch_norm: bool = False  # BatchNorm between each conv and its activation (stats in batch_stats).

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        act = activation(self.activation)
        x = x_BxHxWxC
        for features in self.conv_features:
            # BatchNorm's shift makes the conv's bias redundant.
            x = nn.Conv(features, (self.kernel_size, self.kernel_size), use_bias=not self.batch_norm)(x)
            if self.batch_norm:
                x = batch_norm(train)(x)
            x = max_pool_2x2(act(x))
        x = x.reshape(x.shape[0], -1)
        for size in self.dense_sizes:
            x = act(nn.Dense(size)(x))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes)(x)
