"""Fashion-MNIST, CNN conv32-pool-conv64-pool-dense128-dense10, Adam with cosine decay.

The default experiment (about 92% test accuracy in under 10 minutes on 2 CPU cores):
  scripts/train.sh
  python -m experiments.train --config=configs/fashion_mnist_cnn.py --workdir=runs/fashion_mnist_cnn
Smoke variant (a few steps on a slice of the schedule):
  python -m experiments.train --config=configs/fashion_mnist_cnn.py:smoke=True --workdir=/tmp/smoke
"""

from configs import common


def get_config(arg=None):
    args = common.parse_arg(arg, smoke=False)
    config = common.base_config()
    config.data.name = "fashion_mnist"
    config.model = common.cnn_model(conv_features=(32, 64), dense_sizes=(128,))
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
