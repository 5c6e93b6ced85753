"""Classifiers of 1-D signals [B, L, C] (or [B, L], one channel): the CNN and GRU baselines
that Greydanus (2020, "Scaling down deep learning", github.com/greydanus/mnist1d) trains on
MNIST-1D (L=40, C=1). Their default sizes are that paper's.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax

from research.errors import UserError


def _with_channels(x: jax.Array) -> jax.Array:
    if x.ndim == 2:
        return x[..., None]
    if x.ndim != 3:
        raise UserError(f"1-D signal models take [batch, length] or [batch, length, channels]; "
                        f"got shape {x.shape}")
    return x


class CNN1D(nn.Module):
    """Strided 1-D convs with ReLU, flattened into a Dense head. The defaults are the paper's
    ConvBase: three convs of 25 channels, kernels (5, 3, 3), stride 2, padding 1, taking
    L=40 to 19, 10 and 5 steps, so the head sees 25 x 5 = 125 features (5,210 parameters
    with 10 classes; features are flattened length-major, PyTorch's are channel-major)."""

    num_classes: int
    channels: Sequence[int] = (25, 25, 25)
    kernel_sizes: Sequence[int] = (5, 3, 3)
    stride: int = 2
    padding: int = 1

    @nn.compact
    def __call__(self, x_BxLxC: jax.Array, *, train: bool) -> jax.Array:
        if len(self.channels) != len(self.kernel_sizes):
            raise UserError(f"cnn1d: channels {tuple(self.channels)} and kernel_sizes "
                            f"{tuple(self.kernel_sizes)} need one entry a conv each; "
                            "give both the same length")
        x = _with_channels(x_BxLxC)
        for features, kernel in zip(self.channels, self.kernel_sizes, strict=True):
            x = nn.relu(nn.Conv(features, (kernel,), (self.stride,),
                                padding=((self.padding, self.padding),))(x))
        return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


class GRUClassifier(nn.Module):
    """A GRU over time whose outputs at every step, flattened (L x 2 x hidden_size when
    bidirectional), feed a Dense head. The defaults are the paper's: hidden size 6,
    bidirectional (5,110 parameters with L=40 and 10 classes; Flax's GRUCell has 2 x
    hidden_size fewer biases a direction than PyTorch's, which has two redundant ones)."""

    num_classes: int
    hidden_size: int = 6
    bidirectional: bool = True

    @nn.compact
    def __call__(self, x_BxLxC: jax.Array, *, train: bool) -> jax.Array:
        x = _with_channels(x_BxLxC)
        forward = nn.RNN(nn.GRUCell(self.hidden_size, name="forward_cell"))
        if self.bidirectional:
            rnn = nn.Bidirectional(forward, nn.RNN(nn.GRUCell(self.hidden_size, name="backward_cell")))
        else:
            rnn = forward
        outputs_BxLxH = rnn(x)
        return nn.Dense(self.num_classes)(outputs_BxLxH.reshape(outputs_BxLxH.shape[0], -1))
