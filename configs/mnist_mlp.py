"""MNIST, the seed MLP: 784-128-64-10 (ReLU), Adam 1e-3, 10 epochs of batch 64. The published
figure for this model is about 98.1% test accuracy. MNIST comes from the TFDS catalog
(internet the first time); offline the run stops with one line naming the flag that runs the
same model on Fashion-MNIST:

  python -m experiments.train --config=configs/mnist_mlp.py --workdir=runs/mnist_mlp
  python -m experiments.train --config=configs/mnist_mlp.py --workdir=runs/fmnist_seed_mlp \\
      --config.data.name=fashion_mnist
"""

from configs import common


def get_config(arg=None):
    args = common.parse_arg(arg, smoke=False)
    config = common.base_config()
    config.data.update(name="mnist", batch_size=64)
    config.model = common.mlp_model(hidden_sizes=(128, 64))
    config.opt.update(name="adam", lr=1e-3, schedule="constant")
    # A step takes well under a millisecond: 10 a call (same results, faster).
    config.train.update(epochs=10.0, log_every=200, keep=1, steps_per_call=10)
    return common.shrink_for_smoke(config) if args.smoke else config


def get_sweep(name):
    if name == "lr":
        return common.lr_seed_sweep(lrs=(3e-4, 1e-3, 3e-3), seeds=range(3))
    raise ValueError(f"unknown sweep {name!r}; this config has: lr")
