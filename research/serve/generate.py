"""Text from a language-model run: its config, tokenizer and checkpoint, sampled."""

import jax
import numpy as np

from research import models
from research import workdir as workdir_lib
from research.data import text, tokenizer
from research.errors import UserError
from research.models import sampling
from research.run import checkpoint


def generate(workdir: str, prompt: str, *, max_new_tokens: int, temperature: float, top_k: int,
             seed: int, num_samples: int = 1, checkpoint_name: str = "latest") -> list[str]:
    """`num_samples` continuations of `prompt` (the prompt not repeated), sampled with
    `key(seed)`: the same arguments give the same text."""
    config = workdir_lib.load_config(workdir)
    if not models.is_language_model(config.model.name):
        raise UserError(
            f"{workdir} trained a {config.model.name!r} model; generation needs a language model "
            f"({sorted(models.LANGUAGE_MODELS)})")
    tok = tokenizer.load(text.run_tokenizer_file(workdir))
    model = models.build(config.model, num_classes=0, vocab_size=tok.vocab_size)
    _, params = checkpoint.latest_params(workdir, checkpoint_name)
    # The model reads its last max_len tokens at each step (research/models/sampling.py), so a
    # prompt and a continuation may be as long as asked.
    (prompt_ids,) = tok.encode_ids([prompt], add_bos=True)
    prompts = np.repeat(prompt_ids[None], num_samples, axis=0)
    tokens = sampling.sample_batch(
        model, params, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
        top_k=top_k, key=jax.random.key(seed), eos_id=tok.eos_id, pad_id=tok.pad_id)
    # Decoded whole, then the prompt's text cut off: a continuation decoded alone would lose
    # the space SentencePiece keeps at the start of its first piece.
    prompt_text = tok.decode(prompt_ids.tolist())
    return [tok.decode(row.tolist())[len(prompt_text):] for row in np.asarray(tokens)]
