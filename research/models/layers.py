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
