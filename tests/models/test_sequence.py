import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from research import models
from tests.conftest import jit_init


def init(name, x, **fields):
    """The model's apply, jitted (one program, not one per operation), and its variables."""
    model = models.build(ml_collections.ConfigDict({"name": name, **fields}), num_classes=10)
    return jax.jit(model.apply, static_argnames="train"), jit_init(model, jax.random.key(0), x, train=False)


def param_count(params) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(params))


def test_cnn1d_defaults_are_the_mnist1d_paper_convnet():
    x = jax.random.normal(jax.random.key(1), (2, 40, 1))
    apply, variables = init("cnn1d", x)
    kernels = [variables["params"][f"Conv_{i}"]["kernel"].shape for i in range(3)]
    assert kernels == [(5, 1, 25), (3, 25, 25), (3, 25, 25)]
    assert variables["params"]["Dense_0"]["kernel"].shape == (25 * 5, 10)
    assert param_count(variables["params"]) == 5_210
    logits = apply(variables, x, train=False)
    assert logits.shape == (2, 10)
    # A [B, L] signal is one channel.
    np.testing.assert_array_equal(apply(variables, x[..., 0], train=False), logits)


def test_gru_reads_every_step_in_both_directions():
    x = jax.random.normal(jax.random.key(1), (2, 40, 1))
    apply, variables = init("gru", x)
    params = variables["params"]
    assert sorted(params) == ["Dense_0", "backward_cell", "forward_cell"]
    assert params["Dense_0"]["kernel"].shape == (40 * 2 * 6, 10)
    assert param_count(params) == 5_110
    assert apply(variables, x, train=False).shape == (2, 10)


def test_gru_backward_direction_carries_the_future_back():
    x = jax.random.normal(jax.random.key(1), (2, 3, 1))
    apply, variables = init("gru", x)
    # The head reads only the first step's outputs (forward and backward), yet the last step
    # changes the logits: the backward direction carried it there.
    kernel = variables["params"]["Dense_0"]["kernel"]
    variables["params"]["Dense_0"]["kernel"] = kernel.at[2 * 6:].set(0.0)
    assert not np.allclose(apply(variables, x.at[:, -1].add(1.0), train=False),
                           apply(variables, x, train=False))


def test_unidirectional_gru():
    apply, variables = init("gru", jnp.ones((1, 5, 2)), hidden_size=3, bidirectional=False)
    assert variables["params"]["Dense_0"]["kernel"].shape == (5 * 3, 10)
