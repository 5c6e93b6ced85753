"""scikit-learn digits (8x8), small MLP or CNN: seconds per run, for tests and smoke checks.

  python -m experiments.train --config=configs/digits_mlp.py --workdir=/tmp/digits
  python -m experiments.train --config=configs/digits_mlp.py:model=cnn --workdir=/tmp/digits_cnn
  python -m experiments.train --config=configs/digits_mlp.py:model=vit --workdir=/tmp/digits_vit \
      --config.model.depth=1   # resnet and vit start from their families' defaults
"""

from configs import common


def get_config(arg=None):
    args = common.parse_arg(arg, model="mlp")
    config = common.base_config()
    config.data.name = "digits"
    config.data.batch_size = 32
    config.eval.batch_size = 64
    config.model = common.model_config(args.model, {
        "mlp": common.mlp_model(hidden_sizes=(32,)),
        "cnn": common.cnn_model(conv_features=(8, 16), dense_sizes=(32,))}, "image")
    config.opt.name = "adam"
    config.opt.lr = 3e-3
    config.train.steps = 60
    config.train.log_every = 10
    config.train.eval_every = 30
    config.train.checkpoint_every = 20
    return config


def get_sweep(name):
    if name == "lr":
        return common.lr_seed_sweep(lrs=(1e-3, 3e-3), seeds=range(2))
    raise ValueError(f"unknown sweep {name!r}; this config has: lr")
