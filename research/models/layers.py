"""Small pieces shared by the model families."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from research.errors import UserError

ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu, "tanh": jnp.tanh, "elu": nn.elu}


def activation(name: str):
    if name not in ACTIVATIONS:
        raise UserError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def max_pool_2x2(x_BxHxWxC: jax.Array) -> jax.Array:
    """2x2 max pooling with stride 2 (VALID), as a reshape and a max.

    Same values as `nn.max_pool(x, (2, 2), (2, 2))`, but XLA:CPU differentiates the reshape
    form about twice as fast as reduce_window's select-and-scatter, which dominated the CNN's
    train step on CPU.
    """
    B, H, W, C = x_BxHxWxC.shape
    x = x_BxHxWxC[:, : H - H % 2, : W - W % 2, :]
    return x.reshape(B, H // 2, 2, W // 2, 2, C).max(axis=(2, 4))


def batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
    """BatchNorm with PyTorch's defaults (momentum 0.9 for the running averages, epsilon 1e-5),
    the convention ResNet recipes are written in. Training normalises with the batch's
    statistics and updates the running ones in the "batch_stats" collection; evaluation uses
    the running ones, so an example's output does not depend on the rest of its batch."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)
