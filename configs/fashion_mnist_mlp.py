"""Fashion-MNIST, MLP 784-128-64-10, Adam with cosine decay.

  scripts/train.sh --config=configs/fashion_mnist_mlp.py --workdir=runs/fashion_mnist_mlp
  python -m experiments.train --config=configs/fashion_mnist_mlp.py --workdir=runs/fashion_mnist_mlp
Sweeps (see `get_sweep`):
  python -m experiments.sweep --config=configs/fashion_mnist_mlp.py --sweep=lr --sweep_dir=runs/mlp_lr \
      --parallel=2 [--vectorize]
Smoke variant (20 steps):
  python -m experiments.train --config=configs/fashion_mnist_mlp.py:smoke=True --workdir=/tmp/smoke
"""

from configs import common


def get_config(arg=None):
    args = common.parse_arg(arg, smoke=False)
    config = common.fashion_mnist(common.mlp_model(hidden_sizes=(128, 64)))
    # A step takes under a millisecond on CPU: 10 a call cut the host's share of it
    # (about 1.35x the train-step examples/s on 2 cores, python -m benchmarks); same results.
    config.train.steps_per_call = 10
    return common.shrink_for_smoke(config) if args.smoke else config


def get_sweep(name):
    if name == "lr":  # 3 learning rates x 3 seeds.
        return common.lr_seed_sweep(lrs=(3e-4, 1e-3, 3e-3), seeds=range(3))
    if name == "seeds":  # 8 seeds of the default: the vectorized sweep's benchmark.
        return common.product(seed=range(8))
    raise ValueError(f"unknown sweep {name!r}; this config has: lr, seeds")
