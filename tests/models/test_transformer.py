import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import traverse_util

from research import models
from research.errors import UserError
from research.models.transformer import TransformerConfig
from tests.conftest import jit_init

TINY = {"max_len": 16, "hidden": 8, "depth": 2, "heads": 2, "mlp_dim": 16}
VOCAB = 11


def build(name, **fields):
    config = ml_collections.ConfigDict({"name": name, **TINY, **fields})
    return models.build(config, num_classes=3, vocab_size=VOCAB)


def test_sizes_are_one_transformer_config_gathered_by_field_name():
    model = build("transformer", causal=True, remat="block")
    assert model.config == TransformerConfig(hidden=8, depth=2, heads=2, mlp_dim=16, remat="block")
    assert (model.max_len, model.causal, model.pool) == (16, True, "mean")
    fields = {"max_len": 512, **dataclasses.asdict(TransformerConfig())}
    assert models.defaults("lm") == fields
    assert models.defaults("transformer") == {**fields, "causal": False, "pool": "mean"}


def tokens_and_mask(lengths=(8, 5)):
    tokens = jax.random.randint(jax.random.key(0), (len(lengths), 8), 1, VOCAB)
    mask = jnp.arange(8)[None] < jnp.array(lengths)[:, None]
    return tokens, mask


def test_lm_is_causal():
    model = build("lm", dropout=0.0)
    tokens, mask = tokens_and_mask()
    variables = jit_init(model, jax.random.key(1), tokens, mask=mask, train=False)
    apply = jax.jit(model.apply, static_argnames="train")  # One program, not one per operation.
    logits = apply(variables, tokens, mask=mask, train=False)
    assert logits.shape == (2, 8, VOCAB)
    changed = apply(variables, tokens.at[:, 4:].set(0), mask=mask, train=False)
    np.testing.assert_allclose(changed[:, :4], logits[:, :4], rtol=1e-5, atol=1e-6)
    assert not np.allclose(changed[:, 4:], logits[:, 4:])


@pytest.mark.parametrize("pool,causal", [("mean", False), ("last", False), ("last", True)])
def test_classifier_ignores_padding(pool, causal):
    model = build("transformer", pool=pool, causal=causal)
    tokens, mask = tokens_and_mask()
    variables = jit_init(model, jax.random.key(1), tokens, mask=mask, train=False)
    apply = jax.jit(model.apply, static_argnames="train")  # One program, not one per operation.
    logits = apply(variables, tokens, mask=mask, train=False)
    assert logits.shape == (2, 3)
    repadded = jnp.where(mask, tokens, 7)
    np.testing.assert_allclose(apply(variables, repadded, mask=mask, train=False), logits,
                               rtol=1e-5, atol=1e-6)
    # Only the second row has padding; its real tokens still matter.
    changed = apply(variables, tokens.at[1, 0].set(0), mask=mask, train=False)
    assert not np.allclose(changed[1], logits[1])


def test_dropout_only_in_training():
    model = build("transformer", dropout=0.5)
    tokens, mask = tokens_and_mask()
    variables = jit_init(model, jax.random.key(1), tokens, mask=mask, train=False)
    apply = jax.jit(model.apply, static_argnames="train")  # One program, not one per operation.
    np.testing.assert_array_equal(apply(variables, tokens, mask=mask, train=False),
                                  apply(variables, tokens, mask=mask, train=False))
    train_a = apply(variables, tokens, mask=mask, train=True, rngs={"dropout": jax.random.key(1)})
    train_b = apply(variables, tokens, mask=mask, train=True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(train_a, train_b)


def test_classifier_shares_the_lm_trunk_and_only_the_head_differs():
    tokens, mask = tokens_and_mask()

    def shapes(model):
        init = lambda: model.init(jax.random.key(0), tokens, mask=mask, train=False)  # noqa: E731
        params = nn.unbox(jax.eval_shape(init))["params"]
        return {path: leaf.shape for path, leaf in traverse_util.flatten_dict(params, sep="/").items()}

    lm, classifier = shapes(build("lm")), shapes(build("transformer", causal=True))
    shared = set(lm) & set(classifier)
    assert {path.split("/")[0] for path in set(lm) - shared} == {"lm_head"}
    assert {path.split("/")[0] for path in set(classifier) - shared} == {"classifier_head"}
    assert {path.split("/")[0] for path in shared} == {"trunk"}
    assert {path.split("/")[1] for path in shared} == {"token_embed", "position_embed", "block_0", "block_1",
                                                       "final_norm"}
    assert all(lm[path] == classifier[path] for path in shared)


def test_default_sizes():
    model = models.build(ml_collections.ConfigDict({"name": "lm"}), num_classes=0, vocab_size=100)
    tokens = jnp.ones((1, 512), jnp.int32)
    params = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), tokens, train=False)))["params"]
    assert params["trunk"]["position_embed"]["embedding"].shape == (512, 128)
    assert params["trunk"]["block_1"]["mlp_in"]["kernel"].shape == (128, 512)
    assert params["trunk"]["block_0"]["attention"]["query"]["kernel"].shape == (128, 4, 32)
    assert params["lm_head"]["kernel"].shape == (128, 100)


def test_too_long_input_and_unknown_pool_are_user_errors():
    tokens = jnp.ones((1, 17), jnp.int32)
    with pytest.raises(UserError, match="max_len"):
        build("lm").init(jax.random.key(0), tokens, train=False)
    with pytest.raises(UserError, match="first"):
        build("transformer", pool="first").init(jax.random.key(0), tokens[:, :4], train=False)


def test_attention_matches_flax_with_dropout(monkeypatch):
    """Block's attention is Flax's default one (same masking, softmax and dropout bits): values
    and gradients of a block, with dropout, agree with a block whose attention is unmodified."""
    from research.models import transformer

    x_BxLxD = jax.random.normal(jax.random.key(0), (2, 8, 8))
    mask = (jnp.arange(8)[None] < jnp.array([8, 5])[:, None])[:, None, None, :]
    block = transformer.Block(TransformerConfig(heads=2, mlp_dim=16, dropout=0.25))
    params = jit_init(block, jax.random.key(1), x_BxLxD, attention_mask=mask, train=False)

    def run(x):
        return block.apply(params, x, attention_mask=mask, train=True, rngs={"dropout": jax.random.key(2)})

    # Each jitted on its own (a new function each: a second jit of `run` would reuse the first's
    # trace, made before the attention was swapped).
    ours, ours_vjp = jax.vjp(jax.jit(lambda x: run(x)), x_BxLxD)
    shifted = jax.jit(lambda x: run(x))(x_BxLxD + 1)
    monkeypatch.setattr(transformer, "_weights_times_values", jnp.einsum)  # Flax's default product.
    flax, flax_vjp = jax.vjp(jax.jit(lambda x: run(x)), x_BxLxD)
    assert not np.allclose(ours, shifted)  # The input matters, so the check can fail.
    np.testing.assert_allclose(ours, flax, rtol=1e-5, atol=1e-6)
    g = jax.random.normal(jax.random.key(3), ours.shape)
    np.testing.assert_allclose(ours_vjp(g)[0], flax_vjp(g)[0], rtol=1e-5, atol=1e-6)


def lm_gradient(model, params, tokens, mask):
    def loss(params):
        logits = model.apply({"params": params}, tokens, mask=mask, train=False)
        return jnp.mean(jax.nn.logsumexp(logits, -1) - logits[..., 0])
    return jax.grad(loss)


def test_remat_recomputes_the_same_gradients_in_less_memory():
    tokens = jax.random.randint(jax.random.key(0), (4, 64), 1, VOCAB)
    mask = jnp.ones(tokens.shape, bool)
    sizes = {"max_len": 64, "hidden": 32, "depth": 4, "heads": 2, "mlp_dim": 128, "dropout": 0.0}
    variables = jit_init(build("lm", **sizes), jax.random.key(1), tokens, mask=mask, train=False)
    params = nn.unbox(variables)["params"]
    grads, temp_bytes = {}, {}
    for remat in ("none", "block", "full"):
        gradient = jax.jit(lm_gradient(build("lm", **sizes, remat=remat), params, tokens, mask))
        compiled = gradient.lower(params).compile()  # Compiled once, run and measured.
        grads[remat] = compiled(params)
        temp_bytes[remat] = compiled.memory_analysis().temp_size_in_bytes
    for remat in ("block", "full"):
        for a, b in zip(jax.tree.leaves(grads["none"]), jax.tree.leaves(grads[remat]), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert temp_bytes["full"] < temp_bytes["none"], temp_bytes


def test_bfloat16_computes_in_bfloat16_and_keeps_float32_parameters_and_logits():
    tokens, mask = tokens_and_mask()
    model = build("lm", dropout=0.0)
    # Jitted: one compilation each instead of one per operation.
    params = nn.unbox(jit_init(model, jax.random.key(1), tokens, mask=mask, train=False))["params"]
    full = jax.jit(functools.partial(model.apply, train=False))({"params": params}, tokens, mask=mask)
    half_model = build("lm", dropout=0.0, dtype="bfloat16")
    half_apply = functools.partial(half_model.apply, train=False, capture_intermediates=True)
    half, intermediates = jax.jit(half_apply)({"params": params}, tokens, mask=mask)
    assert half.dtype == jnp.float32  # The loss's softmax reads float32 logits.
    mlp_out = intermediates["intermediates"]["trunk"]["block_0"]["mlp_in"]["__call__"][0]
    assert mlp_out.dtype == jnp.bfloat16
    # The head's own matmul is float32 (not a bfloat16 product cast up afterwards).
    assert intermediates["intermediates"]["lm_head"]["__call__"][0].dtype == jnp.float32
    np.testing.assert_allclose(half, full, atol=0.05)
    assert not np.array_equal(half, full)
    bf16_params = jax.eval_shape(functools.partial(build("lm", param_dtype="bfloat16").init, train=False),
                                 jax.random.key(1), tokens, mask=mask)["params"]
    assert {leaf.dtype for leaf in jax.tree.leaves(bf16_params)} == {jnp.dtype("bfloat16")}
    with pytest.raises(UserError, match="model.dtype='float16'"):
        build("lm", dtype="float16").init(jax.random.key(1), tokens, mask=mask, train=False)


@pytest.mark.parametrize("family", ["lm", "vit"])
def test_scanned_blocks_compute_what_the_unrolled_ones_do_and_layouts_convert_both_ways(family):
    from research.models import transformer

    sizes = {"hidden": 16, "heads": 2, "mlp_dim": 32, "depth": 3, "dropout": 0.0}
    if family == "vit":
        x, inputs = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1)), {}
        unrolled = models.build(ml_collections.ConfigDict({"name": "vit", **sizes, "patch_size": 4}), 3)
        scanned = models.build(ml_collections.ConfigDict({"name": "vit", **sizes, "patch_size": 4,
                                                          "scan": True}), 3)
    else:
        x = jax.random.randint(jax.random.key(0), (2, 12), 1, VOCAB)
        inputs = {"mask": jnp.ones(x.shape, bool)}
        unrolled, scanned = build("lm", **sizes), build("lm", **sizes, scan=True)
    params = nn.unbox(jit_init(unrolled, jax.random.key(1), x, **inputs, train=False))["params"]
    abstract = nn.unbox(jax.eval_shape(lambda: scanned.init(jax.random.key(1), x, **inputs, train=False)))
    flat = traverse_util.flatten_dict(params, sep="/")
    wanted = traverse_util.flatten_dict(abstract["params"], sep="/")
    stacked = transformer.match_block_layout(flat, wanted)
    assert {path: v.shape for path, v in stacked.items()} == {path: v.shape for path, v in wanted.items()}
    assert not any("block_" in path for path in stacked)
    scanned_params = traverse_util.unflatten_dict(stacked, sep="/")

    @functools.partial(jax.jit, static_argnums=0)
    def loss_and_grad(model, p):
        def loss(p):
            return jnp.sum(model.apply({"params": p}, x, **inputs, train=False) ** 2)
        return jax.value_and_grad(loss)(p)
    scanned_loss, grads = loss_and_grad(scanned, scanned_params)
    unrolled_loss, unrolled_grads = loss_and_grad(unrolled, params)
    np.testing.assert_allclose(scanned_loss, unrolled_loss, rtol=1e-5)
    expected = transformer.match_block_layout(traverse_util.flatten_dict(unrolled_grads, sep="/"), wanted)
    for path, value in traverse_util.flatten_dict(grads, sep="/").items():
        np.testing.assert_allclose(value, expected[path], rtol=1e-4, atol=1e-4, err_msg=path)
    back = transformer.unrolled_blocks(stacked)
    assert set(back) == set(flat) and all(np.array_equal(back[p], flat[p]) for p in flat)


def test_remat_under_scan_keeps_its_saving():
    """XLA:CPU schedules an unrolled loop's recomputation into the forward pass; under scan the
    saving holds (the numbers of the issue: 16 layers, 2,776 MiB none against 220 MiB full)."""
    tokens = jax.random.randint(jax.random.key(0), (4, 64), 1, VOCAB)
    mask = jnp.ones(tokens.shape, bool)
    sizes = {"max_len": 64, "hidden": 32, "depth": 6, "heads": 2, "mlp_dim": 128, "dropout": 0.0,
             "scan": True}
    variables = jit_init(build("lm", **sizes), jax.random.key(1), tokens, mask=mask, train=False)
    params = nn.unbox(variables)["params"]
    temp_bytes = {}
    for remat in ("none", "full"):
        gradient = jax.jit(lm_gradient(build("lm", **sizes, remat=remat), params, tokens, mask))
        temp_bytes[remat] = gradient.lower(params).compile().memory_analysis().temp_size_in_bytes
    assert temp_bytes["full"] < 0.5 * temp_bytes["none"], temp_bytes
