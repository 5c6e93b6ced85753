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
    config = common.mnist_seed(common.mlp_model(hidden_sizes=(128, 64)))
    config.train.steps_per_call = 10  # A step takes well under a millisecond; same results.
    return common.shrink_for_smoke(config) if args.smoke else config


get_sweep = common.mnist_seed_sweep
