"""Decoder-only language models of GPT-2-style sizes on the BBC News texts (the offline corpus;
the tokenizer is trained on its training split, as configs/bbc_news.py does).

  python -m experiments.train --config=configs/lm.py:size=small --workdir=runs/lm_small
  python -m experiments.train --config=configs/lm.py:size=124m --workdir=runs/lm124m \
      --config.data.name=text_folder --config.data.files=~/corpus     # your own .txt/.jsonl
  python -m experiments.train --config=configs/lm.py:size=1b --dry_run \
      --config.mesh.data=1 --config.mesh.fsdp=8        # what the step needs, nothing run

`tiny` is for tests and `small` trains on a CPU here. `124m`, `350m` and `1b` have the widths
and depths of GPT-2 small and medium and of a 1B decoder, in bfloat16 with remat, for
accelerator hosts; untied embeddings over a 32,000-piece vocabulary make 124m about 134M
parameters. Their tokenizer needs more text than BBC News has (SentencePiece cannot fit 32,000
pieces to it): train them on a larger corpus of your own (data.name=text_folder), and plan
them anywhere with --dry_run.
"""

import ml_collections

from configs import common

# size: (hidden, depth, heads, max_len, vocab, batch, dtype, remat)
SIZES = {
    "tiny": (16, 1, 2, 64, 400, 16, "float32", "none"),
    "small": (128, 4, 4, 256, 4000, 32, "float32", "none"),
    "124m": (768, 12, 12, 1024, 32000, 32, "bfloat16", "block"),
    "350m": (1024, 24, 16, 1024, 32000, 32, "bfloat16", "block"),
    "1b": (2048, 18, 16, 1024, 32000, 32, "bfloat16", "block"),
}


def get_config(arg=None):
    args = common.parse_arg(arg, size="small")
    if args.size not in SIZES:
        raise ValueError(f"unknown size {args.size!r}; choose one of {list(SIZES)}")
    hidden, depth, heads, max_len, vocab, batch, dtype, remat = SIZES[args.size]
    config = common.base_config()
    config.data.update(name="bbc_news", batch_size=batch, vocab_size=vocab, max_len=max_len)
    config.model = ml_collections.ConfigDict({
        "name": "lm", "max_len": max_len, "hidden": hidden, "depth": depth, "heads": heads,
        "mlp_dim": 4 * hidden, "dropout": 0.0 if args.size in ("124m", "350m", "1b") else 0.1,
        "dtype": dtype, "param_dtype": "float32", "remat": remat})
    config.opt.update(name="adamw", lr=3e-4 if hidden >= 768 else 1e-3, schedule="cosine",
                      warmup_steps=100, weight_decay=0.1, clip_norm=1.0, b2=0.95)
    config.train.update(epochs=2.0, log_every=20, keep=1, best_metric="eval/test/loss", best_mode="min")
    config.eval.batch_size = 64 if batch <= 32 else batch
    if args.size == "tiny":
        config.train.update(steps=20, epochs=0.0, log_every=5, eval_every=10)
    return config


def get_sweep(name):
    if name == "lr":
        return common.lr_seed_sweep(lrs=(3e-4, 1e-3, 3e-3), seeds=range(2))
    raise ValueError(f"unknown sweep {name!r}; this config has: lr")
