"""Autoregressive sampling from a language model ("lm"), compiled once per buffer size.

Tokens are written into a fixed [B, prompt + max_new_tokens] buffer inside a
`jax.lax.while_loop`, so a call compiles once for its shapes and settings and never per step.
Each step recomputes the forward pass over the whole buffer (no KV cache): O(steps x length^2)
attention, which is cheap for the small models here and keeps the model code free of decoding
state. Causal attention makes the not-yet-written tail irrelevant to the logits used. A buffer
longer than the model's `max_len` is read through a window of its last `max_len - 1` tokens
before the next position (positions counted from the window's start, as in training): a model of
64-character context writes pages, as nanoGPT's sampler does by cropping its context.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def sample(model: nn.Module, params, prompt_tokens: jax.Array, *, max_new_tokens: int,
           temperature: float = 1.0, top_k: int = 0, key: jax.Array, eos_id: int | None = None,
           pad_id: int = 0) -> jax.Array:
    """The prompt [P] followed by `max_new_tokens` generated tokens: [P + max_new_tokens].
    See `sample_batch`."""
    return sample_batch(model, params, jnp.asarray(prompt_tokens)[None], max_new_tokens=max_new_tokens,
                        temperature=temperature, top_k=top_k, key=key, eos_id=eos_id, pad_id=pad_id)[0]


def sample_batch(model: nn.Module, params, prompts_BxP: jax.Array, *, prompt_lengths_B=None,
                 max_new_tokens: int, temperature: float = 1.0, top_k: int = 0, key: jax.Array,
                 eos_id: int | None = None, pad_id: int = 0) -> jax.Array:
    """Continues each row's prompt (its first `prompt_lengths_B[b]` tokens, default all P):
    tokens [B, P + max_new_tokens], each row's prompt then its new tokens, then `pad_id`.

    temperature 0 is greedy decoding; top_k 0 samples from the whole vocabulary, else from
    the k most likely tokens. A row stops at `eos_id` (kept) and is padded after it. The same
    key gives the same tokens. `params` is the model's "params" collection.
    """
    prompts_BxP = jnp.asarray(prompts_BxP, jnp.int32)
    batch, prompt_len = prompts_BxP.shape
    if prompt_lengths_B is None:
        prompt_lengths_B = np.full((batch,), prompt_len)
    if np.min(prompt_lengths_B) < 1 or np.max(prompt_lengths_B) > prompt_len:
        raise ValueError(f"prompt lengths must be in [1, {prompt_len}]; got {prompt_lengths_B}")
    return _generate(model, params, prompts_BxP, jnp.asarray(prompt_lengths_B, jnp.int32),
                     jnp.asarray(temperature, jnp.float32), key, max_new_tokens=max_new_tokens,
                     top_k=top_k, eos_id=eos_id, pad_id=pad_id)


@functools.partial(jax.jit, static_argnames=("model", "max_new_tokens", "top_k", "eos_id", "pad_id"))
def _generate(model, params, prompts_BxP, prompt_lengths_B, temperature, key, *, max_new_tokens,
              top_k, eos_id, pad_id):
    batch, prompt_len = prompts_BxP.shape
    positions_T = jnp.arange(prompt_len + max_new_tokens)
    # The tokens the model reads at a step: at most max_len - 1, the most a prediction saw in
    # training (a window of max_len tokens predicts its last max_len - 1 from those before; its
    # last position never predicts, and its position embedding never learns).
    width = min(positions_T.size, model.max_len - 1)
    tokens_BxT = jnp.full((batch, positions_T.size), pad_id, jnp.int32)
    tokens_BxT = tokens_BxT.at[:, :prompt_len].set(
        jnp.where(positions_T[:prompt_len] < prompt_lengths_B[:, None], prompts_BxP, pad_id))

    def not_finished(carry):
        step, _, done_B = carry
        return (step < max_new_tokens) & ~done_B.all()

    def generate_one(carry):
        step, tokens_BxT, done_B = carry
        position_B = prompt_lengths_B + step  # Where each row's next token goes.
        start_B = jnp.maximum(position_B - width, 0)  # The window's first position.
        window_BxW = start_B[:, None] + jnp.arange(width)
        logits_BxWxV = model.apply({"params": params}, jnp.take_along_axis(tokens_BxT, window_BxW, axis=1),
                                   mask=window_BxW < position_B[:, None], train=False)
        last_B = position_B - 1 - start_B
        logits_BxV = jnp.take_along_axis(logits_BxWxV, last_B[:, None, None], axis=1)[:, 0]
        next_B = _choose(logits_BxV, temperature, top_k, jax.random.fold_in(key, step))
        next_B = jnp.where(done_B, pad_id, next_B)
        if eos_id is not None:
            done_B = done_B | (next_B == eos_id)
        tokens_BxT = tokens_BxT.at[jnp.arange(batch), position_B].set(next_B)
        return step + 1, tokens_BxT, done_B

    _, tokens_BxT, _ = jax.lax.while_loop(
        not_finished, generate_one, (jnp.zeros((), jnp.int32), tokens_BxT, jnp.zeros((batch,), bool)))
    return tokens_BxT


def _choose(logits_BxV: jax.Array, temperature: jax.Array, top_k: int, key: jax.Array) -> jax.Array:
    if 0 < top_k < logits_BxV.shape[-1]:
        kth_largest_Bx1 = jax.lax.top_k(logits_BxV, top_k)[0][:, -1:]
        logits_BxV = jnp.where(logits_BxV < kth_largest_Bx1, -jnp.inf, logits_BxV)
    sampled_B = jax.random.categorical(key, logits_BxV / jnp.maximum(temperature, 1e-6))
    return jnp.where(temperature > 0, sampled_B, logits_BxV.argmax(-1)).astype(jnp.int32)
