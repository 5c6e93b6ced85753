"""Transformers over token ids with a padding mask: a decoder-only language model ("lm") and an
encoder classifier ("transformer"). Both are a `Trunk` (token and position embeddings,
pre-LayerNorm `Block`s, a final LayerNorm) under the name "trunk" plus a head under its own
name, so a classifier started from a language model's checkpoint (`init_from`) loads the whole
trunk and initialises only its head. The Vision Transformer reuses `Block`.

Call both as `model.apply(variables, tokens_BxL, mask=mask_BxL, train=...)`, `mask` True on
real tokens. A family's sizes and precision are one `TransformerConfig` (its field `config`),
which the registry builds from `config.model` by field name; the text families add `max_len`
(and the classifier `causal` and `pool`). The defaults (hidden 128, 2 blocks of 4 heads, MLP
512 = 4 x hidden, dropout 0.1) are a small model that trains on a laptop; `vocab_size` comes
from the data's tokenizer.

For large models: parameters carry logical axis names (`embed`, `heads`, `kv`, `mlp`, `vocab`)
that research/parallel/sharding.py maps to mesh axes; `dtype` is the compute type (bfloat16
keeps float32 parameters, LayerNorm statistics, softmax and logits); `remat` recomputes each
block's activations in the backward pass instead of keeping them ("block": all but its matmul
outputs, "full": everything); `scan` runs the blocks as one `nn.scan` (parameters stacked on a
leading `layers` axis), so compile time stays flat with depth and remat saves memory on every
backend.
"""

import dataclasses
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from research.errors import UserError
from research.parallel.sharding import constrain

EMBED_INIT = nn.initializers.normal(stddev=0.02)  # GPT-2's: unit-variance embeddings swamp the blocks.
POOLS = ("mean", "last")
DTYPES = ("float32", "bfloat16")
REMAT_POLICIES = {  # What a rematerialised block keeps for the backward pass.
    "block": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "full": jax.checkpoint_policies.nothing_saveable,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransformerConfig:
    """A stack of pre-LayerNorm blocks: the `config.model` fields every Transformer family has
    (lm, transformer, vit), each set by name (`--config.model.depth=4`). Frozen, so a model
    holding it stays hashable (jit takes models as static arguments)."""

    hidden: int = 128  # Width of the residual stream.
    depth: int = 2  # Blocks.
    heads: int = 4
    # Each head's width; 0: hidden // heads. A structurally pruned model (research/compress/
    # shrink.py) keeps its source's head width with fewer heads.
    head_dim: int = 0
    mlp_dim: int = 512  # The MLP's hidden units.
    dropout: float = 0.1
    dtype: str = "float32"  # Compute type (DTYPES).
    param_dtype: str = "float32"
    remat: str = "none"  # none | block | full (REMAT_POLICIES).
    # The blocks as one `nn.scan` over a stacked "blocks/block" (MaxText's scan_layers): one
    # block compiled whatever the depth, and remat applied inside the scan, where XLA keeps
    # its saving on every backend. False: block_0 ... block_{depth-1}, a Python loop. The
    # carry is pinned batch-sharded like every block's output (`constrain`), so a scanned step
    # moves the bytes of the unrolled one on any mesh (configs/lm.py's 124m and up scan).
    scan: bool = False

    @property
    def types(self) -> dict:
        """The compute and parameter types, as Flax layers take them."""
        return {"dtype": self.dtype, "param_dtype": self.param_dtype}


def named(init, *names: str | None):
    """`init` whose parameter carries logical axis names (for sharding.LOGICAL_RULES)."""
    return nn.with_logical_partitioning(init, names)


def check_precision(config: TransformerConfig) -> None:
    for key, value in (("dtype", config.dtype), ("param_dtype", config.param_dtype)):
        if value not in DTYPES:
            raise UserError(f"model.{key}={value!r}; choose one of {list(DTYPES)} (--config.model.{key})")
    if config.head_dim < 0:
        raise UserError(f"model.head_dim={config.head_dim}; it is 0 (hidden // heads) or a head's width")
    if config.remat not in ("none", *REMAT_POLICIES):
        raise UserError(f"model.remat={config.remat!r}; choose one of {['none', *REMAT_POLICIES]} "
                        "(--config.model.remat)")


def block_class(remat: str):
    """`Block`, or `Block` rematerialised by the named policy; make it as (config) and call it
    as (x, mask, train)."""
    if remat == "none":
        return Block
    # Module, x, attention_mask, train: `train` (argument 3) chooses code, so it is static.
    return nn.remat(Block, policy=REMAT_POLICIES[remat], static_argnums=(3,))


class _ScanStep(nn.Module):
    """One block as the body of `nn.scan`: (x, mask) -> (x, nothing stacked)."""

    config: TransformerConfig
    train: bool

    @nn.compact
    def __call__(self, x: jax.Array, attention_mask: jax.Array | None):
        block = block_class(self.config.remat)(self.config, name="block")
        return block(x, attention_mask, self.train), None


def run_blocks(config: TransformerConfig, x: jax.Array, attention_mask: jax.Array | None,
               train: bool) -> jax.Array:
    """`config.depth` blocks over `x`, made inside the calling module's compact method (their
    parameters are its own): block_0 ... block_{depth-1}, or with `config.scan` one scanned
    "blocks" whose parameters have a leading `layers` axis of size depth."""
    if not config.scan:
        block = block_class(config.remat)
        for i in range(config.depth):
            x = block(config, name=f"block_{i}")(x, attention_mask, train)
        return x
    scanned = nn.scan(_ScanStep, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
                      in_axes=nn.broadcast, length=config.depth,
                      metadata_params={nn.PARTITION_NAME: "layers"})
    x, _ = scanned(config, train, name="blocks")(x, attention_mask)
    return x


_UNROLLED = re.compile(r"^((?:.*/)?)block_(\d+)/(.*)$")  # (prefix ending in "/" or empty, i, rest)
_SCANNED = re.compile(r"^((?:.*/)?)blocks/block/(.*)$")


def match_block_layout(saved: dict, wanted) -> dict:
    """`saved` (leaves by "/"-joined path) with its blocks in the layout of the paths `wanted`:
    block_0 ... block_{n-1} stacked into a scanned "blocks/block" (leading axis n), or a scanned
    one split back. So a checkpoint of either layout starts a model of the other (init_from,
    shrink); leaves of neither kind pass as they are."""
    wanted, matched = set(wanted), {}
    stacks: dict[str, dict[int, np.ndarray]] = {}
    for path, value in saved.items():
        unrolled, scanned = _UNROLLED.match(path), _SCANNED.match(path)
        if unrolled and path not in wanted and f"{unrolled[1]}blocks/block/{unrolled[3]}" in wanted:
            stacks.setdefault(f"{unrolled[1]}blocks/block/{unrolled[3]}", {})[int(unrolled[2])] = value
        elif scanned and path not in wanted and f"{scanned[1]}block_0/{scanned[2]}" in wanted:
            for i, layer in enumerate(np.asarray(value)):
                matched[f"{scanned[1]}block_{i}/{scanned[2]}"] = layer
        else:
            matched[path] = value
    for path, layers in stacks.items():
        matched[path] = np.stack([np.asarray(layers[i]) for i in sorted(layers)])
    return matched


def unrolled_blocks(saved: dict) -> dict:
    """`saved` (leaves by path) with any scanned blocks split into block_0 ... block_{n-1}."""
    return match_block_layout(saved, {_SCANNED.sub(r"\1block_0/\2", path) for path in saved})


def _weights_times_values(subscripts: str, weights_BxHxQxK: jax.Array,
                          value_BxKxHxD: jax.Array) -> jax.Array:
    """Flax's `einsum("...hqk,...khd->...qhd", weights, value)` as a matmul over [B, H] with the
    values moved to [B, H, K, D]: XLA:CPU ran the einsum's dot in a transposed orientation at a
    third of the speed of the rest (docs/performance.md)."""
    if subscripts != "...hqk,...khd->...qhd":
        raise ValueError(f"unexpected attention product {subscripts!r}")
    out_BxHxQxD = weights_BxHxQxK @ jnp.swapaxes(value_BxKxHxD, -3, -2)
    return constrain(jnp.swapaxes(out_BxHxQxD, -3, -2), "batch", "length", "heads", "kv")


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: x + attention(norm(x)), then x + mlp(norm(x)). It reads
    `config`'s heads, mlp_dim, dropout and types; its width is its input's."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BxLxD: jax.Array, attention_mask: jax.Array | None = None,
                 train: bool = False) -> jax.Array:
        """`attention_mask` broadcasts to [B, heads, L_query, L_key], True where attention is allowed."""
        config = self.config
        hidden = x_BxLxD.shape[-1]
        types = config.types
        dense = nn.initializers.lecun_normal()
        y = nn.LayerNorm(name="attention_norm", **types)(x_BxLxD)
        y = nn.MultiHeadDotProductAttention(
            config.heads, qkv_features=config.heads * config.head_dim if config.head_dim else None,
            dropout_rate=config.dropout, deterministic=not train, name="attention",
            kernel_init=named(dense, "embed", "heads", "kv"),
            bias_init=named(nn.initializers.zeros, "heads", "kv"),
            out_kernel_init=named(dense, "heads", "kv", "embed"),
            out_bias_init=named(nn.initializers.zeros, "embed"),
            force_fp32_for_softmax=True, **types,
            # Flax's own attention with the weights-times-values product replaced (the two
            # products are replaced together or not at all).
            qk_attn_weights_einsum_cls=lambda: jnp.einsum,
            attn_weights_value_einsum_cls=lambda: _weights_times_values,
        )(y, mask=attention_mask)
        x = x_BxLxD + nn.Dropout(config.dropout, deterministic=not train)(y)
        y = nn.LayerNorm(name="mlp_norm", **types)(x)
        y = nn.gelu(nn.Dense(config.mlp_dim, name="mlp_in", kernel_init=named(dense, "embed", "mlp"),
                             bias_init=named(nn.initializers.zeros, "mlp"), **types)(y))
        y = constrain(y, "batch", "length", "mlp")
        y = nn.Dropout(config.dropout, deterministic=not train)(y)
        y = nn.Dense(hidden, name="mlp_out", kernel_init=named(dense, "mlp", "embed"),
                     bias_init=named(nn.initializers.zeros, "embed"), **types)(y)
        x = x + nn.Dropout(config.dropout, deterministic=not train)(y)
        return constrain(x, "batch", "length", "embed")


class Trunk(nn.Module):
    """Token ids [B, L] -> features [B, L, hidden]: embeddings, blocks and the final LayerNorm."""

    vocab_size: int
    max_len: int
    causal: bool
    config: TransformerConfig

    @nn.compact
    def __call__(self, tokens_BxL: jax.Array, mask_BxL: jax.Array, *, train: bool) -> jax.Array:
        config = self.config
        check_precision(config)
        length = tokens_BxL.shape[1]
        if length > self.max_len:
            raise UserError(f"sequences of {length} tokens are longer than the model's max_len "
                            f"{self.max_len}; raise --config.model.max_len or shorten data.max_len")
        types = config.types
        x_BxLxD = nn.Embed(self.vocab_size, config.hidden, embedding_init=named(EMBED_INIT, "vocab", "embed"),
                           name="token_embed", **types)(tokens_BxL)
        x_BxLxD += nn.Embed(self.max_len, config.hidden, embedding_init=EMBED_INIT,
                            name="position_embed", **types)(jnp.arange(length))[None]
        x_BxLxD = nn.Dropout(config.dropout, deterministic=not train)(x_BxLxD)
        x_BxLxD = constrain(x_BxLxD, "batch", "length", "embed")
        # Padding is masked as a key only: a padded query attends to real tokens, and its output
        # is ignored by the heads and losses.
        attention_mask_Bx1xLxL = mask_BxL[:, None, None, :]
        if self.causal:
            attention_mask_Bx1xLxL = attention_mask_Bx1xLxL & jnp.tril(jnp.ones((length, length), bool))
        x_BxLxD = run_blocks(config, x_BxLxD, attention_mask_Bx1xLxL, train)
        return nn.LayerNorm(name="final_norm", **types)(x_BxLxD)


def _real_tokens(tokens_BxL: jax.Array, mask_BxL: jax.Array | None) -> jax.Array:
    return jnp.ones(tokens_BxL.shape, bool) if mask_BxL is None else mask_BxL.astype(bool)


class LanguageModel(nn.Module):
    """Decoder-only language model: causal attention, next-token logits [B, L, vocab_size].

    The output layer is a separate Dense ("lm_head"), not the transposed token embedding: the
    trunk is then exactly what a classifier started from this model inherits, and the
    embedding is trained for one role only. It costs vocab_size x hidden parameters.
    """

    vocab_size: int
    max_len: int = 512
    config: TransformerConfig = TransformerConfig()

    @nn.compact
    def __call__(self, tokens_BxL: jax.Array, *, mask: jax.Array | None = None,
                 train: bool) -> jax.Array:
        return _token_logits(self, tokens_BxL, mask, train, causal=True, head="lm_head")


def _token_logits(model, tokens_BxL: jax.Array, mask: jax.Array | None, train: bool, *, causal: bool,
                  head: str) -> jax.Array:
    """Logits [B, L, vocab_size] of `model`'s trunk ("trunk") and a token head named `head`, made
    inside `model`'s compact call (so their parameters are its own)."""
    x_BxLxD = Trunk(model.vocab_size, model.max_len, causal=causal, config=model.config, name="trunk")(
        tokens_BxL, _real_tokens(tokens_BxL, mask), train=train)
    # The head's matmul in float32 whatever the compute type: the loss and its softmax read the
    # logits at full precision, not a bfloat16 product cast up after the fact.
    logits_BxLxV = nn.Dense(model.vocab_size, name=head, dtype=jnp.float32,
                            param_dtype=model.config.param_dtype,
                            kernel_init=named(nn.initializers.lecun_normal(), "embed", "vocab"),
                            bias_init=named(nn.initializers.zeros, "vocab"))(x_BxLxD)
    return constrain(logits_BxLxV, "batch", "length", "vocab")


class MaskedLanguageModel(nn.Module):
    """The encoder classifier's trunk with a token head: logits [B, L, vocab_size] at every
    position, for masked language modelling (`task=mlm`). Its trunk is what a
    `TransformerClassifier` of the same sizes inherits through `init_from`; the head
    ("mlm_head") is left behind."""

    vocab_size: int
    max_len: int = 512
    config: TransformerConfig = TransformerConfig()
    causal: bool = False

    @nn.compact
    def __call__(self, tokens_BxL: jax.Array, *, mask: jax.Array | None = None,
                 train: bool) -> jax.Array:
        if self.causal:
            raise UserError("task=mlm predicts a token from both sides: set --config.model.causal=False")
        return _token_logits(self, tokens_BxL, mask, train, causal=False, head="mlm_head")


class TransformerClassifier(nn.Module):
    """Encoder classifier: the trunk's features pooled over real tokens, then a Dense head.

    `causal=True` gives the language model's attention pattern, for starting from its
    weights; `pool` is "mean" (over real tokens) or "last" (the last real token, the one
    that has seen the whole text under causal attention).
    """

    num_classes: int
    vocab_size: int
    max_len: int = 512
    config: TransformerConfig = TransformerConfig()
    causal: bool = False
    pool: str = "mean"

    @nn.compact
    def __call__(self, tokens_BxL: jax.Array, *, mask: jax.Array | None = None,
                 train: bool) -> jax.Array:
        if self.pool not in POOLS:
            raise UserError(f"unknown pool {self.pool!r}; choose one of {list(POOLS)} "
                            "with --config.model.pool")
        mask_BxL = _real_tokens(tokens_BxL, mask)
        trunk = Trunk(self.vocab_size, self.max_len, causal=self.causal, config=self.config, name="trunk")
        x_BxLxD = trunk(tokens_BxL, mask_BxL, train=train)
        if self.pool == "mean":
            weights_BxL = mask_BxL.astype(x_BxLxD.dtype)
            count_Bx1 = jnp.maximum(weights_BxL.sum(axis=1, keepdims=True), 1.0)
            x_BxD = jnp.einsum("bld,bl->bd", x_BxLxD, weights_BxL) / count_Bx1
        else:
            length = mask_BxL.shape[1]
            last_B = length - 1 - jnp.argmax(mask_BxL[:, ::-1], axis=1)
            x_BxD = jnp.take_along_axis(x_BxLxD, last_B[:, None, None], axis=1)[:, 0]
        return nn.Dense(self.num_classes, name="classifier_head", dtype=jnp.float32,  # As _token_logits.
                        param_dtype=self.config.param_dtype)(x_BxD)
