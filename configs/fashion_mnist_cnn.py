"""Fashion-MNIST, CNN conv32-pool-conv64-pool-dense128-dense10, Adam with cosine decay.

The default experiment (92.3% test accuracy in 2 min 49 s on 2 CPU cores, `time scripts/train.sh`,
measured 2026-11-24 with the project's CPU defaults; 92.4% in 3 min 52 s on 2026-11-22, 6 min
13 s before any of them):
  scripts/train.sh
  python -m experiments.train --config=configs/fashion_mnist_cnn.py --workdir=runs/fashion_mnist_cnn
Another family with its defaults, then its fields (mlp, cnn, resnet, vit):
  python -m experiments.train --config=configs/fashion_mnist_cnn.py:model=vit --workdir=runs/fmnist_vit \
      --config.model.patch_size=7
Smoke variant (20 steps):
  python -m experiments.train --config=configs/fashion_mnist_cnn.py:smoke=True --workdir=/tmp/smoke
"""

from configs import common


def get_config(arg=None):
    args = common.parse_arg(arg, smoke=False, model="cnn")
    variants = {"cnn": common.cnn_model(conv_features=(32, 64), dense_sizes=(128,))}
    config = common.fashion_mnist(common.model_config(args.model, variants, "image"))
    return common.shrink_for_smoke(config) if args.smoke else config


def get_sweep(name):
    if name == "lr":
        return common.lr_seed_sweep(lrs=(3e-4, 1e-3, 3e-3), seeds=range(3))
    raise ValueError(f"unknown sweep {name!r}; this config has: lr")
