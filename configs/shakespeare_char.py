"""Character-level tiny Shakespeare with nanoGPT's two published `shakespeare_char` recipes.

  python -m experiments.train --config=configs/shakespeare_char.py:recipe=cpu --workdir=runs/shakespeare
  python -m experiments.generate --workdir=runs/shakespeare --prompt="ROMEO:" --max_new_tokens=300

The text is one stream split as nanoGPT splits it (the first 90% trains, the last 10% is the
test split, nanoGPT's "val"), read a character a piece (`data.tokenizer=char`: 65 characters
and our pad/unk/bos/eos). A window of `data.max_len` = context + 1 characters gives `context`
predictions, each from up to `context` characters before it, as nanoGPT's x, y pairs do. Our
windows are the stream cut into consecutive pieces, shuffled each epoch (nanoGPT draws each
one at a random offset). The last evaluation reads the whole test split; nanoGPT estimates its
val loss from `eval_iters` random batches. The cpu recipe's evaluations during training read the
first 256 windows (`eval.periodic_max_batches=1`, about nanoGPT's 20 batches of 12); the gpu
recipe's read the whole split (434 windows, fewer than nanoGPT's 200 batches of 64).

Recipes (nanoGPT's config/train_shakespeare_char.py, and its README's CPU variant):
  cpu  4 blocks of 4 heads, width 128, context 64, batch 12, 2,000 iterations, dropout 0;
       nanoGPT's README: val loss about 1.88 in about 3 minutes on a laptop CPU.
  gpu  6 blocks of 6 heads, width 384, context 256, batch 64, 5,000 iterations, dropout 0.2;
       nanoGPT's README: best val loss 1.4697 in about 3 minutes on one A100.
Both: AdamW at 1e-3 (beta2 0.99, weight decay 0.1 on kernels, gradient clip 1.0), 100 warmup
steps, cosine to 1e-4 at the last step. The models differ from nanoGPT's in that the token
embedding and the output layer are not tied and the layers have biases.
"""

from configs import common

RECIPES = {
    "cpu": {"depth": 4, "heads": 4, "hidden": 128, "context": 64, "batch": 12, "steps": 2000, "dropout": 0.0,
            "eval_every": 250, "periodic_eval_batches": 1},
    "gpu": {"depth": 6, "heads": 6, "hidden": 384, "context": 256, "batch": 64, "steps": 5000, "dropout": 0.2,
            "eval_every": 250, "periodic_eval_batches": 0},
}


def get_config(arg=None):
    args = common.parse_arg(arg, recipe="cpu")
    if args.recipe not in RECIPES:
        raise ValueError(f"unknown recipe {args.recipe!r}; choose one of {list(RECIPES)}")
    recipe = RECIPES[args.recipe]
    config = common.base_config()
    window = recipe["context"] + 1
    config.data.update(name="tiny_shakespeare", tokenizer="char", max_len=window, batch_size=recipe["batch"])
    config.model = common.model_config("lm", {}, "text")
    config.model.update(max_len=window, hidden=recipe["hidden"], depth=recipe["depth"], heads=recipe["heads"],
                        mlp_dim=4 * recipe["hidden"], dropout=recipe["dropout"])
    config.opt.update(name="adamw", lr=1e-3, schedule="cosine", warmup_steps=100, end_lr_factor=0.1,
                      weight_decay=0.1, clip_norm=1.0, b2=0.99)
    config.train.update(steps=recipe["steps"], epochs=0.0, log_every=50, eval_every=recipe["eval_every"],
                        keep=1, best_metric="eval/test/loss", best_mode="min")
    config.eval.batch_size = 256
    config.eval.periodic_max_batches = recipe["periodic_eval_batches"]
    return config


def get_sweep(name):
    if name == "seeds":
        return common.product(seed=range(3))
    if name == "lr":
        return common.lr_seed_sweep(lrs=(3e-4, 1e-3, 3e-3), seeds=range(2))
    raise ValueError(f"unknown sweep {name!r}; this config has: seeds, lr")
