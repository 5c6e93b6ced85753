"""BBC News (2,225 articles, 5 classes; our seeded stratified 80/20 split): a Transformer
classifier, and a decoder-only Transformer language model on the training texts that the
classifier can start from.

  python -m experiments.train --config=configs/bbc_news.py:model=transformer --workdir=runs/bbc_cls
  python -m experiments.train --config=configs/bbc_news.py:model=lm --workdir=runs/bbc_lm
  python -m experiments.train --config=configs/bbc_news.py:model=transformer --workdir=runs/bbc_ft \
      --config.init_from=runs/bbc_lm
  python -m experiments.generate --workdir=runs/bbc_lm --prompt="The government said"
  python -m experiments.train --config=configs/bbc_news.py:model=mlm --workdir=runs/bbc_mlm
  python -m experiments.train --config=configs/bbc_news.py:model=encoder --workdir=runs/bbc_mlm_ft \
      --config.init_from=runs/bbc_mlm
Both share one trunk (2 pre-LayerNorm blocks, width 128, 4 heads, causal attention), so the
classifier started from the language model differs from the one trained from scratch only in
its initial weights. `:model=mlm` pretrains the same trunk with bidirectional attention as a
masked language model (BERT's objective: 15% of the tokens, 80/10/10 mask/random/keep), and
`:model=encoder` is the bidirectional classifier that fine-tunes from it. A SentencePiece
tokenizer of 4,000 pieces is trained on the training texts; a classifier reads the first 256
tokens of an article, the language models every token, in windows of 256.
`--config.model.dtype=bfloat16` computes in bfloat16 (float32 parameters).
"""

import ml_collections

from configs import common

VARIANTS = {  # :model=NAME: the family, and whether its attention is causal.
    "transformer": ("transformer", True),  # Causal: what the LM's trunk fits.
    "lm": ("lm", True),
    "encoder": ("transformer", False),  # Bidirectional: the MLM's trunk.
    "mlm": ("transformer", False),  # Pretrained with task=mlm.
}


def transformer_model(name: str, causal: bool = True) -> ml_collections.ConfigDict:
    """Family `name`'s fields (its defaults, research.models.defaults) at this config's size."""
    model = common.model_config(name, {}, "text")
    model.update(max_len=256, hidden=128, depth=2, heads=4, mlp_dim=512, dropout=0.1)
    if name == "transformer":
        model.update(causal=causal, pool="mean")
    return model


def get_config(arg=None):
    args = common.parse_arg(arg, model="transformer", smoke=False)
    config = common.base_config()
    config.data.update(name="bbc_news", batch_size=32, vocab_size=4000, max_len=256)
    if args.model not in VARIANTS:
        raise ValueError(f"unknown model {args.model!r}; this config takes {sorted(VARIANTS)}")
    config.model = transformer_model(*VARIANTS[args.model])
    config.opt.update(name="adamw", lr=1e-3, schedule="cosine", warmup_steps=100, weight_decay=0.01,
                      clip_norm=1.0)
    config.train.update(epochs=10.0, log_every=20, keep=1)
    config.eval.batch_size = 64
    if args.model == "lm":
        config.train.epochs = 5.0
        config.train.update(best_metric="eval/test/loss", best_mode="min")
    if args.model == "mlm":  # A loss on 15% of the tokens: more epochs than the LM's.
        config.task = "mlm"
        config.train.update(epochs=10.0, best_metric="eval/test/loss", best_mode="min")
    return common.shrink_for_smoke(config) if args.smoke else config


def get_sweep(name):
    if name == "seeds":
        return common.product(seed=range(3))
    if name == "pretrain":  # One language model, the start of every fine-tuned seed.
        return common.product(seed=[0])
    if name == "lr":
        return common.lr_seed_sweep(lrs=(3e-4, 1e-3, 3e-3), seeds=range(2))
    raise ValueError(f"unknown sweep {name!r}; this config has: seeds, pretrain, lr")
