"""The seed sentiment classifier: token embedding -> Transformer encoder -> one sigmoid output,
binary cross-entropy (task=binary), on IMDb reviews (positive or negative) from the TFDS catalog,
which needs internet the first time.

  python -m experiments.train --config=configs/sentiment.py --workdir=runs/imdb

Offline there is no sentiment data on this machine. `:data=bbc_standin` trains the same model
on a STAND-IN binary task, not sentiment: BBC News articles of two topics, business (0) and
tech (1). Its numbers say the model and the binary task work; they say nothing of sentiment.

  python -m experiments.train --config=configs/sentiment.py:data=bbc_standin --workdir=runs/standin
"""

from configs import bbc_news, common


def get_config(arg=None):
    args = common.parse_arg(arg, data="imdb", smoke=False)
    if args.data not in ("imdb", "bbc_standin"):
        raise ValueError(f"unknown data {args.data!r}; choose imdb or bbc_standin")
    config = common.base_config()
    if args.data == "imdb":
        config.data.update(name="imdb_reviews", batch_size=32, vocab_size=8000, max_len=256)
    else:
        config.data.update(name="bbc_news", batch_size=32, vocab_size=4000, max_len=256,
                           classes=("business", "tech"))
    config.model = bbc_news.transformer_model("transformer")
    config.model.update(causal=False, pool="mean")
    config.task = "binary"
    config.opt.update(name="adamw", lr=1e-3, schedule="cosine", warmup_steps=100, weight_decay=0.01,
                      clip_norm=1.0)
    config.train.update(epochs=5.0, log_every=20, keep=1)
    config.eval.batch_size = 64
    return common.shrink_for_smoke(config) if args.smoke else config


def get_sweep(name):
    if name == "lr":
        return common.lr_seed_sweep(lrs=(3e-4, 1e-3, 3e-3), seeds=range(3))
    raise ValueError(f"unknown sweep {name!r}; this config has: lr")
