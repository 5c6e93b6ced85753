"""Structured pruning (research/compress/shrink.py): the narrow model computes what the wide one
does with the removed channels silenced; a run started from a source starts from its best
weights of the kept channels; bad sources and widths are one error each, before anything is
written."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import common, digits_mlp
from research import models
from research.compress import shrink
from research.errors import UserError
from research.run import checkpoint
from research.train import loop
from tests.train.conftest import read_json


def random_variables(model, x, seed):
    """`model`'s variables with every leaf random (BatchNorm's statistics too), so that no
    channel is like another and a wrong slice shows."""
    variables = jax.jit(lambda: model.init(jax.random.key(0), x, train=False))()
    leaves, tree = jax.tree.flatten(variables)
    rng = np.random.default_rng(seed)
    signs = [rng.choice([-1, 1], leaf.shape) if leaf.ndim > 1 else 1 for leaf in leaves]
    return jax.tree.unflatten(tree, [(rng.uniform(0.2, 1.5, leaf.shape) * sign).astype(np.float32)
                                     for leaf, sign in zip(leaves, signs, strict=True)])


def silenced(variables, chain, kept):
    """The wide model's `variables` with every channel not in `kept` zeroed where it is made (its
    filter and bias, or BatchNorm's scale and shift): such a channel passes on exactly zero."""
    params = jax.tree.map(np.array, variables["params"])
    for layer, keep in zip(chain, kept, strict=True):
        removed = np.setdiff1d(np.arange(params[layer.module]["kernel"].shape[-1]), keep)
        made = params[layer.norm] if layer.norm else params[layer.module]
        if layer.norm is None:
            made["kernel"][..., removed] = 0.0
        made["bias"][removed] = 0.0
        if layer.norm:
            made["scale"][removed] = 0.0
    return {**variables, "params": params}


FAMILIES = {
    "cnn_bn": (common.cnn_model(conv_features=(6, 8), dense_sizes=(12, 10), batch_norm=True), (3, 5, 7, 4)),
    "cnn": (common.cnn_model(conv_features=(6, 8), dense_sizes=(12,)), (2, 8, 5)),
    "mlp": (common.mlp_model(hidden_sizes=(16, 9)), (5, 9)),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("criterion", shrink.CRITERIA)
def test_the_narrow_model_is_the_wide_one_with_the_removed_channels_silenced(family, criterion):
    wide_config, narrow_widths = FAMILIES[family]
    narrow_config = ml_collections.ConfigDict(wide_config.to_dict())
    if wide_config.name == "cnn":
        narrow_config.conv_features = narrow_widths[:2]
        narrow_config.dense_sizes = narrow_widths[2:]
    else:
        narrow_config.hidden_sizes = narrow_widths
    wide, narrow = models.build(wide_config, 10), models.build(narrow_config, 10)
    x = jnp.asarray(np.random.default_rng(1).uniform(0, 1, (5, 8, 8, 1)), jnp.float32)
    variables = random_variables(wide, x, seed=2)

    chain, output, kept = shrink.choose(variables["params"], wide_config, narrow_config, criterion)
    assert [len(keep) for keep in kept] == list(narrow_widths)
    for layer, keep in zip(chain, kept, strict=True):  # The highest scores are the ones kept.
        score = shrink.scores(variables["params"], layer, criterion)
        assert np.min(score[keep]) >= np.max(np.delete(score, keep), initial=-np.inf)
    narrowed = shrink.narrow(jax.tree.map(np.asarray, variables), chain, output, kept)

    apply = jax.jit(lambda model, v: model.apply(v, x, train=False), static_argnums=0)
    np.testing.assert_allclose(apply(narrow, narrowed), apply(wide, silenced(variables, chain, kept)),
                               rtol=1e-5, atol=1e-5)
    # Had the flattened rows been taken in another order, the outputs would differ: the check can fail.
    if family.startswith("cnn"):
        shuffled = jax.tree.map(np.copy, narrowed)
        shuffled["params"]["Dense_0"]["kernel"] = shuffled["params"]["Dense_0"]["kernel"][::-1]
        assert not np.allclose(apply(narrow, shuffled), apply(narrow, narrowed), atol=1e-3)


def test_bn_scale_keeps_the_channels_with_the_largest_gamma():
    params = {"Conv_0": {"kernel": np.ones((3, 3, 1, 6))},
              "BatchNorm_0": {"scale": np.array([0.1, -2.0, 0.5, 3.0, -0.05, 0.4]), "bias": np.zeros(6)}}
    layer = shrink.Layer("Conv_0", "BatchNorm_0")
    kept = shrink.kept_channels(shrink.scores(params, layer, "bn_scale"), 3)
    np.testing.assert_array_equal(kept, [1, 2, 3])
    with pytest.raises(UserError, match=r"criterion='taylor'; choose one of \['bn_scale', 'l1', 'l2'\]"):
        shrink.scores(params, layer, "taylor")


def narrow_config(tfds_dir, source, **changes):
    config = digits_mlp.get_config("model=cnn")
    config.data.tfds_dir = tfds_dir
    config.model.update(conv_features=(4, 8), dense_sizes=(16,))
    config.shrink.update(source=source, criterion="l1")
    config.train.update(steps=2, eval_every=2, checkpoint_every=2, log_every=1)
    for key, value in changes.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def test_a_shrunk_run_starts_from_the_sources_best_weights_of_the_kept_channels(
        digits_cnn_run, tfds_dir, tmp_path):
    workdir = str(tmp_path / "shrunk")
    config = narrow_config(tfds_dir, digits_cnn_run, **{"opt.lr": 0.0})  # Steps that move nothing.
    results = loop.train_and_evaluate(config, workdir)
    assert results["status"] == "finished" and np.isfinite(results["eval/test/loss"])

    source = jax.tree.map(np.asarray, checkpoint.latest_variables(digits_cnn_run, "best")[1])
    source_config = read_json(f"{digits_cnn_run}/config.json")
    chain, output, kept = shrink.choose(source["params"], ml_collections.ConfigDict(source_config["model"]),
                                        config.model, "l1")
    expected = shrink.narrow(source, chain, output, kept)
    _, started = checkpoint.latest_variables(workdir, "latest")
    for a, b in zip(jax.tree.leaves(expected["params"]), jax.tree.leaves(started["params"]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert read_json(f"{workdir}/config.json")["model"]["conv_features"] == [4, 8]



@pytest.mark.parametrize("changes, message", [
    ({"model.conv_features": (16, 8)},
     r"widths \[16, 8, 16\] must be one per layer of the source's \[8, 16, 32\]"),
    ({"model.dense_sizes": ()}, r"widths \[4, 8\] must be one per layer"),
    ({"shrink.criterion": "taylor"}, "shrink.criterion='taylor'"),
    ({"init_from.": None}, "init_from and shrink each name a run to start from; choose one"),
    ({"model.kernel_size": 5}, "differ in more than widths"),
])
def test_a_shrink_that_cannot_be_made_is_one_error_and_writes_nothing(
        changes, message, digits_cnn_run, tfds_dir, tmp_path):
    config = narrow_config(tfds_dir, digits_cnn_run)
    for key, value in changes.items():
        if key == "init_from.":
            config.init_from = digits_cnn_run
            continue
        section, name = key.split(".")
        config[section][name] = value
    workdir = str(tmp_path / "shrunk")
    with pytest.raises(UserError, match=message):
        loop.train_and_evaluate(config, workdir)
    assert not os.path.exists(workdir)


def test_a_source_that_is_no_run_or_of_another_family_is_one_error(digits_cnn_run, tfds_dir, tmp_path):
    with pytest.raises(UserError, match=r"shrink.source: .* is not the workdir of a run \(no config.json\)"):
        loop.train_and_evaluate(narrow_config(tfds_dir, str(tmp_path)), str(tmp_path / "a"))
    config = narrow_config(tfds_dir, digits_cnn_run)
    config.model = common.mlp_model(hidden_sizes=(8,))
    with pytest.raises(UserError, match="this run's model is 'mlp' but the source's is 'cnn'"):
        loop.train_and_evaluate(config, str(tmp_path / "b"))


TRANSFORMERS = {  # Source (heads, mlp_dim) -> kept (heads, mlp_dim), 2 blocks.
    "lm": ({"hidden": 16, "heads": 4, "mlp_dim": 12}, (2, 5)),
    "transformer": ({"hidden": 16, "heads": 4, "mlp_dim": 12, "pool": "mean"}, (3, 7)),
    "vit": ({"hidden": 16, "heads": 4, "mlp_dim": 12, "patch_size": 4}, (1, 4)),
}


@pytest.mark.parametrize("family", sorted(TRANSFORMERS))
def test_a_narrow_transformer_is_the_wide_one_with_the_removed_heads_and_units_silenced(family):
    sizes, (heads, units) = TRANSFORMERS[family]
    wide_config = ml_collections.ConfigDict({"name": family, **models.defaults(family), **sizes,
                                             "depth": 2, "dropout": 0.0})
    narrow_config = ml_collections.ConfigDict(wide_config.to_dict())
    narrow_config.update(heads=heads, mlp_dim=units, head_dim=shrink.head_width(wide_config))
    if family == "vit":
        x, kwargs = jnp.asarray(np.random.default_rng(1).uniform(0, 1, (3, 8, 8, 1)), jnp.float32), {}
    else:
        x = jnp.asarray(np.random.default_rng(1).integers(0, 20, (3, 6)), jnp.int32)
        kwargs = {"mask": jnp.ones((3, 6), bool)}
    build = lambda c: models.build(c, 5, vocab_size=20)  # noqa: E731
    wide, narrow = build(wide_config), build(narrow_config)
    variables = jax.tree.map(np.asarray, nn.meta.unbox(
        jax.jit(lambda: wide.init(jax.random.key(0), x, **kwargs, train=False))()))
    rng = np.random.default_rng(3)
    variables = jax.tree.map(lambda v: (v + rng.normal(0, 0.3, v.shape)).astype(np.float32), variables)

    chain, output, kept = shrink.choose(variables["params"], wide_config, narrow_config, "l2")
    assert [len(keep) for keep in kept] == [heads, units, heads, units]
    for layer, keep in zip(chain, kept, strict=True):
        score = shrink.scores(variables["params"], layer, "l2")
        assert np.min(score[keep]) >= np.max(np.delete(score, keep), initial=-np.inf)
    narrowed = shrink.narrow(variables, chain, output, kept)
    silent = jax.tree.map(np.copy, variables)
    for layer, keep in zip(chain, kept, strict=True):
        block = silent["params"]
        for name in layer.module.split("/"):
            block = block[name]
        removed = np.setdiff1d(np.arange(4 if layer.kind == "heads" else 12), keep)
        if layer.kind == "heads":  # A head writes to the stream through its slice of `out`.
            block["attention"]["out"]["kernel"][removed] = 0.0
        else:
            block["mlp_out"]["kernel"][removed] = 0.0
    apply = jax.jit(lambda model, v: model.apply(v, x, **kwargs, train=False), static_argnums=0)
    np.testing.assert_allclose(apply(narrow, narrowed), apply(wide, silent), rtol=1e-4, atol=1e-5)
    assert not np.allclose(apply(wide, variables), apply(wide, silent), atol=1e-3)  # Something was removed.

    narrow_config.head_dim = 0
    with pytest.raises(UserError, match=f"set --config.model.head_dim={shrink.head_width(wide_config)}"):
        shrink.choose(variables["params"], wide_config, narrow_config, "l1")
