"""Fashion-MNIST, MLP 784-128-64-10, Adam with cosine decay.

  scripts/train.sh --config=configs/fashion_mnist_mlp.py --workdir=runs/fashion_mnist_mlp
  python -m experiments.train --config=configs/fashion_mnist_mlp.py --workdir=runs/fashion_mnist_mlp
"""

from configs import common


def get_config(arg=None):
    args = common.parse_arg(arg, smoke=False)
    config = common.base_config()
    config.data.name = "fashion_mnist"
    config.model = common.mlp_model(hidden_sizes=(128, 64))
    config.opt.name = "adam"
    config.opt.lr = 1e-3
    config.opt.schedule = "cosine"
    config.opt.warmup_steps = 200
    config.train.epochs = 10.0
    if args.smoke:
        config.train.steps = 20
        config.train.log_every = 5
        config.train.eval_every = 10
    return config


def get_sweep(name):
    if name == "lr":
        return [{"opt.lr": lr, "seed": seed} for lr in (3e-4, 1e-3, 3e-3) for seed in range(3)]
    raise ValueError(f"unknown sweep {name!r}; this config has: lr")
