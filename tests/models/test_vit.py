import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from research import models
from research.errors import UserError
from research.models.transformer import TransformerConfig
from tests.conftest import jit_init


def test_default_sizes():
    model = models.build(ml_collections.ConfigDict({"name": "vit"}), num_classes=10)
    x = jnp.ones((1, 28, 28, 1))
    params = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False)))["params"]
    assert params["patch_embed"]["kernel"].shape == (4, 4, 1, 64)
    assert params["position_embed"].shape == (1 + 7 * 7, 64)  # [CLS] and 49 patches.
    assert sorted(k for k in params if k.startswith("block_")) == ["block_0", "block_1", "block_2", "block_3"]
    assert params["block_0"]["mlp_in"]["kernel"].shape == (64, 128)
    assert sum(leaf.size for leaf in jax.tree.leaves(params)) == 139_018


def test_fields_left_unset_keep_the_vits_defaults_not_the_text_families():
    model = models.build(ml_collections.ConfigDict({"name": "vit", "hidden": 8}), num_classes=3)
    assert model.config == TransformerConfig(hidden=8, depth=4, heads=4, mlp_dim=128, dropout=0.0)
    assert (model.patch_size, model.pool) == (4, "cls")


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_logits_shape_and_dropout_only_in_training(pool):
    config = ml_collections.ConfigDict(
        {"name": "vit", "patch_size": 4, "hidden": 8, "depth": 1, "heads": 2, "mlp_dim": 16,
         "dropout": 0.5, "pool": pool})
    model = models.build(config, num_classes=3)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
    variables = jit_init(model, jax.random.key(1), x, train=False)
    assert ("cls_token" in variables["params"]) == (pool == "cls")
    apply = jax.jit(model.apply, static_argnames="train")  # One compilation, not one per op.
    logits = apply(variables, x, train=False)
    assert logits.shape == (2, 3)
    np.testing.assert_array_equal(logits, apply(variables, x, train=False))
    train_a = apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    train_b = apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(train_a, train_b)


def test_unknown_pool_is_a_user_error():
    model = models.build(ml_collections.ConfigDict({"name": "vit", "pool": "max"}), num_classes=3)
    with pytest.raises(UserError, match="max"):
        jit_init(model, jax.random.key(0), jnp.ones((1, 8, 8, 1)), train=False)
