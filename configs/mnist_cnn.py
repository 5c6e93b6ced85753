"""MNIST, the seed CNN: conv32(3x3)-maxpool-dense128-dense10, Adam 1e-3, 10 epochs of batch 64.
The published figure for this model is about 98.3% test accuracy. MNIST comes from the TFDS
catalog (internet the first time); offline the run stops with one line naming the flag that
runs the same model on Fashion-MNIST:

  python -m experiments.train --config=configs/mnist_cnn.py --workdir=runs/mnist_cnn
  python -m experiments.train --config=configs/mnist_cnn.py --workdir=runs/fmnist_seed_cnn \\
      --config.data.name=fashion_mnist
"""

from configs import common


def get_config(arg=None):
    args = common.parse_arg(arg, smoke=False)
    config = common.mnist_seed(common.cnn_model(conv_features=(32,), dense_sizes=(128,)))
    return common.shrink_for_smoke(config) if args.smoke else config


get_sweep = common.mnist_seed_sweep
