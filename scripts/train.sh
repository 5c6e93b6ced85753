#!/usr/bin/env bash
# Trains the default experiment (Fashion-MNIST CNN) into runs/fashion_mnist_cnn; any flag given
# is passed on and wins, e.g. scripts/train.sh --config=configs/fashion_mnist_mlp.py --workdir=runs/mlp
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/python -m experiments.train \
  --config=configs/fashion_mnist_cnn.py --workdir=runs/fashion_mnist_cnn "$@"
