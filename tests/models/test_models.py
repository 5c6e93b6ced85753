import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import common
from research import models
from research.errors import UserError
from research.models.layers import max_pool_2x2
from tests.conftest import jit_init


@pytest.mark.parametrize("model_config", [common.mlp_model(), common.cnn_model()], ids=["mlp", "cnn"])
def test_logits_shape_and_dropout_only_in_training(model_config):
    model_config.dropout = 0.5
    model = models.build(model_config, num_classes=10)
    x = jnp.ones((4, 28, 28, 1))
    variables = jit_init(model, jax.random.key(0), x, train=False)
    apply = jax.jit(model.apply, static_argnames="train")
    logits = apply(variables, x, train=False)
    assert logits.shape == (4, 10)
    np.testing.assert_array_equal(logits, apply(variables, x, train=False))
    train_a = apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    train_b = apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(train_a, train_b)


def test_default_sizes():
    x = jnp.ones((1, 28, 28, 1))
    mlp = models.build(common.mlp_model(), num_classes=10)
    params = jax.eval_shape(lambda: mlp.init(jax.random.key(0), x, train=False))["params"]
    assert [params[f"Dense_{i}"]["kernel"].shape for i in range(3)] == [(784, 128), (128, 64), (64, 10)]
    cnn = models.build(common.cnn_model(), num_classes=10)
    params = jax.eval_shape(lambda: cnn.init(jax.random.key(0), x, train=False))["params"]
    assert params["Conv_0"]["kernel"].shape == (3, 3, 1, 32)
    assert params["Conv_1"]["kernel"].shape == (3, 3, 32, 64)
    assert params["Dense_0"]["kernel"].shape == (7 * 7 * 64, 128)


@pytest.mark.parametrize("shape", [(2, 28, 28, 3), (2, 7, 9, 1)])
def test_max_pool_matches_flax_values_and_gradient(shape):
    """Bit for bit, ties included: values rounded to halves tie often, and after a ReLU every
    window of negatives is a tie of zeros."""
    x = jnp.round(2 * jax.random.normal(jax.random.key(0), shape)) / 2
    g = jax.random.normal(jax.random.key(1), max_pool_2x2(x).shape)
    for f in (lambda x: x, nn.relu):
        ours, ours_vjp = jax.vjp(lambda x, f=f: max_pool_2x2(f(x)), x)
        flax, flax_vjp = jax.vjp(lambda x, f=f: nn.max_pool(f(x), (2, 2), (2, 2)), x)
        np.testing.assert_array_equal(ours, flax)
        np.testing.assert_array_equal(ours_vjp(g)[0], flax_vjp(g)[0])


def test_unknown_model_and_field_are_user_errors():
    config = common.mlp_model()
    config.name = "perceptron9000"
    with pytest.raises(UserError, match="unknown model"):
        models.build(config, num_classes=10)
    config = common.mlp_model()
    config.kernel_size = 3
    with pytest.raises(UserError, match="kernel_size"):
        models.build(config, num_classes=10)


def test_data_fields_come_from_the_caller_not_the_config():
    lm = ml_collections.ConfigDict({"name": "lm"})
    with pytest.raises(UserError, match="vocab_size"):
        models.build(lm, num_classes=10)
    assert models.build(lm, num_classes=10, vocab_size=7).vocab_size == 7  # num_classes ignored.
    lm.vocab_size = 7
    with pytest.raises(UserError, match="set from the data"):
        models.build(lm, num_classes=10, vocab_size=7)
    assert not hasattr(models.build(common.mlp_model(), num_classes=10, vocab_size=7), "vocab_size")


def test_mlp_without_hidden_layers_is_logistic_regression():
    model = models.build(common.mlp_model(hidden_sizes=()), num_classes=10)
    x = jax.random.normal(jax.random.key(0), (3, 28, 28, 1))
    params = jit_init(model, jax.random.key(1), x, train=False)["params"]
    assert jax.tree.map(jnp.shape, params) == {"Dense_0": {"kernel": (784, 10), "bias": (10,)}}
    expected = x.reshape(3, -1) @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"]
    np.testing.assert_allclose(model.apply({"params": params}, x, train=False), expected, rtol=1e-5)


def test_residual_mlp_adds_the_input_where_widths_match():
    config = common.mlp_model(hidden_sizes=(5, 5))
    x = jax.random.normal(jax.random.key(0), (3, 4))
    plain = models.build(config, num_classes=2)
    params = jit_init(plain, jax.random.key(1), x, train=False)["params"]
    config.residual = True
    residual = models.build(config, num_classes=2)
    dense = [params[f"Dense_{i}"] for i in range(3)]
    h = nn.relu(x @ dense[0]["kernel"] + dense[0]["bias"])  # 4 -> 5: no skip.
    h = h + nn.relu(h @ dense[1]["kernel"] + dense[1]["bias"])
    np.testing.assert_allclose(residual.apply({"params": params}, x, train=False),
                               h @ dense[2]["kernel"] + dense[2]["bias"], rtol=1e-5)


def test_cnn_batch_norm_keeps_running_stats():
    config = common.cnn_model(conv_features=(4, 8), dense_sizes=())
    config.batch_norm = True
    model = models.build(config, num_classes=3)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    variables = jit_init(model, jax.random.key(1), x, train=False)
    assert sorted(variables["params"]) == ["BatchNorm_0", "BatchNorm_1", "Conv_0", "Conv_1", "Dense_0"]
    assert "bias" not in variables["params"]["Conv_0"]  # BatchNorm's shift replaces it.
    assert jax.tree.map(jnp.shape, variables["batch_stats"]["BatchNorm_1"]) == {"mean": (8,), "var": (8,)}
    _, updated = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
    assert not np.allclose(updated["batch_stats"]["BatchNorm_0"]["mean"],
                           variables["batch_stats"]["BatchNorm_0"]["mean"])
    plain = jax.eval_shape(lambda: models.build(common.cnn_model(), num_classes=3).init(jax.random.key(1), x,
                                                                                     train=False))
    assert "batch_stats" not in plain


def test_unknown_activation_is_a_user_error():
    config = common.mlp_model()
    config.activation = "swishy"
    model = models.build(config, num_classes=10)
    with pytest.raises(UserError, match="swishy"):
        jit_init(model, jax.random.key(0), jnp.ones((1, 4)), train=False)
