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
    """2x2 max pooling with stride 2 (VALID): the values and the gradient of
    `nn.max_pool(x, (2, 2), (2, 2))`, bit for bit (a tie sends the gradient to the window's
    first maximum in row-major order), at a fraction of its cost on CPU.

    XLA:CPU differentiates reduce_window with a slow select-and-scatter loop. Here the forward
    pass takes the maximum of four strided views and records which of them won; the backward
    pass is one elementwise pass that sends each output's gradient to that position
    (measurements in docs/performance.md).
    """
    B, H, W, C = x_BxHxWxC.shape
    return _max_pool_even(x_BxHxWxC[:, : H - H % 2, : W - W % 2, :])


def _window_views(x_BxHxWxC: jax.Array) -> tuple[jax.Array, ...]:
    """The four positions of every 2x2 window, in row-major order, each B x H/2 x W/2 x C."""
    return (x_BxHxWxC[:, 0::2, 0::2], x_BxHxWxC[:, 0::2, 1::2],
            x_BxHxWxC[:, 1::2, 0::2], x_BxHxWxC[:, 1::2, 1::2])


@jax.custom_vjp
def _max_pool_even(x_BxHxWxC: jax.Array) -> jax.Array:
    return _max_pool_forward(x_BxHxWxC)[0]


def _max_pool_forward(x_BxHxWxC):
    top_left, top_right, bottom_left, bottom_right = _window_views(x_BxHxWxC)
    y = jnp.maximum(jnp.maximum(top_left, top_right), jnp.maximum(bottom_left, bottom_right))
    # Index (0-3, row-major) of the first view equal to the maximum: where the gradient goes.
    winner = jnp.where(top_left == y, 0, jnp.where(top_right == y, 1, jnp.where(bottom_left == y, 2, 3)))
    return y, winner.astype(jnp.int8)


def _max_pool_backward(winner_BxhxwxC, g_BxhxwxC):
    B, h, w, C = g_BxhxwxC.shape

    def upsample(t):  # each window's value at its four positions, B x 2h x 2w x C
        return jnp.broadcast_to(t[:, :, None, :, None, :], (B, h, 2, w, 2, C)).reshape(B, 2 * h, 2 * w, C)

    shape = (B, 2 * h, 2 * w, C)
    row, column = (jax.lax.broadcasted_iota(jnp.int8, shape, axis) % 2 for axis in (1, 2))
    position = 2 * row + column
    return (jnp.where(upsample(winner_BxhxwxC) == position, upsample(g_BxhxwxC), 0).astype(g_BxhxwxC.dtype),)


_max_pool_even.defvjp(_max_pool_forward, _max_pool_backward)


def batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
    """BatchNorm with PyTorch's defaults (momentum 0.9 for the running averages, epsilon 1e-5),
    the convention ResNet recipes are written in. Training normalises with the batch's
    statistics and updates the running ones in the "batch_stats" collection; evaluation uses
    the running ones, so an example's output does not depend on the rest of its batch."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)
