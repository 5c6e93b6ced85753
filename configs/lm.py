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
parameters. BBC News (about 2,225 articles) is far too little text for them, though its
32,000-piece tokenizer trains: train them on a larger corpus of your own
(data.name=text_folder), and plan them anywhere with --dry_run (which reports the step's
collective bytes on the mesh). Their blocks run under nn.scan (`--config.model.scan=False`
unrolls them; a checkpoint of either layout starts the other through init_from).
"""

from configs import common

# Accelerator sizes compute in bfloat16 and scan their blocks, recomputing each block's
# activations: 124m at 1,024 tokens, batch 32 on 8 devices plans 3.2 GB of temporaries a device
# scanned against 10.7 GB unrolled, with the same collective bytes (docs/many_hosts.md).
ACCELERATOR = {"dropout": 0.0, "dtype": "bfloat16", "remat": "block", "scan": True}
SIZES = {  # config.model's fields (the others are the lm family's defaults) and config.data's.
    "tiny": {"model": {"max_len": 64, "hidden": 16, "depth": 1, "heads": 2, "mlp_dim": 64},
             "data": {"vocab_size": 400, "batch_size": 16}},
    "small": {"model": {"max_len": 256, "hidden": 128, "depth": 4, "heads": 4, "mlp_dim": 512},
              "data": {"vocab_size": 4000, "batch_size": 32}},
    "124m": {"model": {"max_len": 1024, "hidden": 768, "depth": 12, "heads": 12, "mlp_dim": 3072,
                       **ACCELERATOR},
             "data": {"vocab_size": 32000, "batch_size": 32}},
    "350m": {"model": {"max_len": 1024, "hidden": 1024, "depth": 24, "heads": 16, "mlp_dim": 4096,
                       **ACCELERATOR},
             "data": {"vocab_size": 32000, "batch_size": 32}},
    "1b": {"model": {"max_len": 1024, "hidden": 2048, "depth": 18, "heads": 16, "mlp_dim": 8192,
                     **ACCELERATOR},
           "data": {"vocab_size": 32000, "batch_size": 32}},
}


def get_config(arg=None):
    args = common.parse_arg(arg, size="small")
    if args.size not in SIZES:
        raise ValueError(f"unknown size {args.size!r}; choose one of {list(SIZES)}")
    size = SIZES[args.size]
    config = common.base_config()
    config.data.update(name="bbc_news", max_len=size["model"]["max_len"], **size["data"])
    config.model = common.model_config("lm", {}, "text")
    config.model.update(size["model"])
    config.opt.update(name="adamw", lr=3e-4 if config.model.hidden >= 768 else 1e-3, schedule="cosine",
                      warmup_steps=100, weight_decay=0.1, clip_norm=1.0, b2=0.95)
    config.train.update(epochs=2.0, log_every=20, keep=1, best_metric="eval/test/loss", best_mode="min")
    config.eval.batch_size = 64 if config.data.batch_size <= 32 else config.data.batch_size
    if args.size == "tiny":  # For tests: a few steps, evaluated on the first 512 test windows.
        config.train.update(steps=20, epochs=0.0, log_every=5, eval_every=10)
        config.eval.max_batches = 8
    return config


def get_sweep(name):
    if name == "lr":
        return common.lr_seed_sweep(lrs=(3e-4, 1e-3, 3e-3), seeds=range(2))
    raise ValueError(f"unknown sweep {name!r}; this config has: lr")
