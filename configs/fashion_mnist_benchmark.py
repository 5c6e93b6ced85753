"""Fashion-MNIST rows of the zalandoresearch/fashion-mnist benchmark table, trained here with one
recipe: Adam 1e-3, 200 warmup steps, cosine decay, batch 128, 10 epochs (ResNets: SGD with
momentum and augmentation).

Published test accuracy: MLP 256-128-100 0.8833; 2 Conv+pooling 0.876; 2 Conv+pooling+BN 0.934;
ResNet18 0.949 (with flips, translations and rotations).
  python -m experiments.train --config=configs/fashion_mnist_benchmark.py:row=cnn_bn \
      --workdir=runs/fmnist_cnn_bn
  python -m experiments.sweep --config=configs/fashion_mnist_benchmark.py:row=mlp --sweep=seeds \
      --sweep_dir=runs/fmnist_mlp --vectorize
Rows: mlp, cnn (conv32-pool-conv64-pool-dense128), cnn_bn (the same with BatchNorm), resnet18
(CIFAR-style ResNet18, 11.2M parameters: needs an accelerator), resnet_cpu (a ResNet of three
stages of one block, widths 8-16-32, sized to train on two CPU cores).
"""

import ml_collections

from configs import common

ROWS = ("mlp", "cnn", "cnn_bn", "resnet18", "resnet_cpu")


def resnet(stage_sizes, widths, epochs):
    config = common.fashion_mnist(
        ml_collections.ConfigDict({"name": "resnet", "stage_sizes": stage_sizes, "widths": widths}))
    config.data.augment = "random_crop(pad=2)|flip_lr"
    config.opt.update(name="momentum", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                      warmup_steps=200)
    config.train.epochs = epochs
    return config


def get_config(arg=None):
    args = common.parse_arg(arg, row="cnn_bn", smoke=False)
    if args.row == "mlp":
        config = common.fashion_mnist(common.mlp_model(hidden_sizes=(256, 128, 100)))
        config.train.steps_per_call = 10  # Sub-millisecond steps (see fashion_mnist_mlp.py).
    elif args.row in ("cnn", "cnn_bn"):
        config = common.fashion_mnist(common.cnn_model(
            conv_features=(32, 64), dense_sizes=(128,), batch_norm=args.row == "cnn_bn"))
    elif args.row == "resnet18":
        config = resnet((2, 2, 2, 2), (64, 128, 256, 512), epochs=30.0)
    elif args.row == "resnet_cpu":
        config = resnet((1, 1, 1), (8, 16, 32), epochs=10.0)
    else:
        raise ValueError(f"unknown row {args.row!r}; choose one of {ROWS}")
    return common.shrink_for_smoke(config) if args.smoke else config


def get_sweep(name):
    if name == "seeds":  # Two: a 10-epoch CNN run takes about 6 minutes on two CPU cores.
        return common.product(seed=range(2))
    if name == "lr":
        return common.lr_seed_sweep(lrs=(3e-4, 1e-3, 3e-3), seeds=range(3))
    raise ValueError(f"unknown sweep {name!r}; this config has: seeds, lr")
