"""Multi-layer perceptron over flattened inputs. With no hidden layers (`hidden_sizes=()`) it is
multinomial logistic regression. `residual=True` adds each hidden layer's input to its output
where their widths match, as the MNIST-1D paper's MLP does for its second 100-unit layer
(Greydanus 2020, github.com/greydanus/mnist1d: `h = h + linear2(h).relu()`)."""

from collections.abc import Sequence

import flax.linen as nn
import jax

from research.models.layers import activation


class MLP(nn.Module):
    num_classes: int
    hidden_sizes: Sequence[int] = (128, 64)
    activation: str = "relu"
    dropout: float = 0.0
    residual: bool = False

    @nn.compact
    def __call__(self, x_BxHxWxC: jax.Array, *, train: bool) -> jax.Array:
        act = activation(self.activation)
        x = x_BxHxWxC.reshape(x_BxHxWxC.shape[0], -1)
        for size in self.hidden_sizes:
            y = nn.Dropout(self.dropout, deterministic=not train)(act(nn.Dense(size)(x)))
            x = x + y if self.residual and x.shape == y.shape else y
        return nn.Dense(self.num_classes)(x)
