"""MNIST-1D (Greydanus 2020, github.com/greydanus/mnist1d): the paper's four baselines with its
training recipe, Adam at 1e-2, batch 100, 6,000 steps, no schedule or weight decay.

Published test accuracy: logistic regression 32%, MLP 68%, CNN 94%, GRU 91%.
  python -m experiments.train --config=configs/mnist1d.py:model=cnn --workdir=runs/mnist1d_cnn
  python -m experiments.sweep --config=configs/mnist1d.py:model=gru --sweep=seeds \
      --sweep_dir=runs/mnist1d_gru --vectorize
Models: logreg (linear), mlp (40-100-100-10 with the paper's residual second layer), cnn (three
strided 1-D convs of 25 channels), gru (bidirectional, hidden size 6).
"""


from configs import common

MODELS = {
    "logreg": common.mlp_model(hidden_sizes=()),
    "mlp": common.mlp_model(hidden_sizes=(100, 100), residual=True),
    "cnn": {"name": "cnn1d", "channels": (25, 25, 25), "kernel_sizes": (5, 3, 3), "stride": 2, "padding": 1},
    "gru": {"name": "gru", "hidden_size": 6, "bidirectional": True},
}


def get_config(arg=None):
    args = common.parse_arg(arg, model="cnn", smoke=False)
    config = common.base_config()
    config.data.name = "mnist1d"
    config.data.batch_size = 100
    config.model = common.model_config(args.model, MODELS, "signal")  # Or cnn1d: its defaults.
    config.opt.update(name="adam", lr=1e-2, schedule="constant")
    # Steps of these small models take about a millisecond: 10 a call (same results, faster).
    config.train.update(steps=6000, log_every=100, eval_every=500, keep=1, steps_per_call=10)
    return common.shrink_for_smoke(config) if args.smoke else config


def get_sweep(name):
    if name == "seeds":  # The table's five seeds.
        return common.product(seed=range(5))
    if name == "lr":
        return common.lr_seed_sweep(lrs=(3e-3, 1e-2, 3e-2), seeds=range(3))
    raise ValueError(f"unknown sweep {name!r}; this config has: seeds, lr")
