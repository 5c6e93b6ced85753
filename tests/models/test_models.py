import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from research import models
from research.errors import UserError
from research.models.layers import max_pool_2x2


@pytest.mark.parametrize("model_config", [common.mlp_model(), common.cnn_model()], ids=["mlp", "cnn"])
def test_logits_shape_and_dropout_only_in_training(model_config):
    model_config.dropout = 0.5
    model = models.build(model_config, num_classes=10)
    x = jnp.ones((4, 28, 28, 1))
    variables = model.init(jax.random.key(0), x, train=False)
    logits = model.apply(variables, x, train=False)
    assert logits.shape == (4, 10)
    np.testing.assert_array_equal(logits, model.apply(variables, x, train=False))
    train_a = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    train_b = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(train_a, train_b)


def test_default_sizes():
    mlp = models.build(common.mlp_model(), num_classes=10)
    params = mlp.init(jax.random.key(0), jnp.ones((1, 28, 28, 1)), train=False)["params"]
    assert [params[f"Dense_{i}"]["kernel"].shape for i in range(3)] == [(784, 128), (128, 64), (64, 10)]
    cnn = models.build(common.cnn_model(), num_classes=10)
    params = cnn.init(jax.random.key(0), jnp.ones((1, 28, 28, 1)), train=False)["params"]
    assert params["Conv_0"]["kernel"].shape == (3, 3, 1, 32)
    assert params["Conv_1"]["kernel"].shape == (3, 3, 32, 64)
    assert params["Dense_0"]["kernel"].shape == (7 * 7 * 64, 128)


@pytest.mark.parametrize("shape", [(2, 28, 28, 3), (2, 7, 9, 1)])
def test_max_pool_matches_flax(shape):
    x = jax.random.normal(jax.random.key(0), shape)
    np.testing.assert_array_equal(max_pool_2x2(x), nn.max_pool(x, (2, 2), (2, 2)))


def test_unknown_model_and_field_are_user_errors():
    config = common.mlp_model()
    config.name = "transformer"
    with pytest.raises(UserError, match="unknown model"):
        models.build(config, num_classes=10)
    config = common.mlp_model()
    config.kernel_size = 3
    with pytest.raises(UserError, match="kernel_size"):
        models.build(config, num_classes=10)


def test_unknown_activation_is_a_user_error():
    config = common.mlp_model()
    config.activation = "swishy"
    model = models.build(config, num_classes=10)
    with pytest.raises(UserError, match="swishy"):
        model.init(jax.random.key(0), jnp.ones((1, 4)), train=False)
