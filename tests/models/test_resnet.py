import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from research import models
from tests.conftest import jit_init


def param_count(model, x) -> int:
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    return sum(leaf.size for leaf in jax.tree.leaves(shapes["params"]))


def test_default_is_cifar_resnet18():
    model = models.build(ml_collections.ConfigDict({"name": "resnet"}), num_classes=10)
    assert param_count(model, jnp.ones((1, 32, 32, 3))) == 11_173_962


def tiny_resnet():
    config = ml_collections.ConfigDict({"name": "resnet", "stage_sizes": (1, 1), "widths": (4, 8)})
    model = models.build(config, num_classes=3)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    return model, x, jit_init(model, jax.random.key(1), x, train=False)


def test_projection_shortcut_only_where_shape_changes():
    _, _, variables = tiny_resnet()
    assert "shortcut_conv" not in variables["params"]["stage0_block0"]
    assert variables["params"]["stage1_block0"]["shortcut_conv"]["kernel"].shape == (1, 1, 4, 8)


def test_training_updates_batch_stats_and_evaluation_uses_them():
    model, x, variables = tiny_resnet()
    apply = jax.jit(model.apply, static_argnames=("train", "mutable"))  # One program, not one per op.
    logits, updated = apply(variables, x, train=True, mutable=("batch_stats",))
    assert logits.shape == (4, 3)
    changed = jax.tree.map(lambda a, b: not np.allclose(a, b),
                           variables["batch_stats"], updated["batch_stats"])
    assert all(jax.tree.leaves(changed))
    variables = {"params": variables["params"], **updated}
    eval_logits, unchanged = apply(variables, x, train=False, mutable=("batch_stats",))
    jax.tree.map(np.testing.assert_array_equal, unchanged["batch_stats"], variables["batch_stats"])
    # Running statistics: an example's logits do not depend on the rest of its batch.
    np.testing.assert_allclose(apply(variables, x[:1], train=False), eval_logits[:1],
                               rtol=1e-5, atol=1e-6)
