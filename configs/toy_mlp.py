"""The smallest seed system: a 2 -> 3 -> 1 MLP binary classifier (sigmoid output, binary
cross-entropy, Adam) on two half-moons in the plane (scikit-learn's make_moons, seeded);
writes plots/predictions.png, the predicted probability over the plane and the decision
boundary.

  python -m experiments.train --config=configs/toy_mlp.py --workdir=runs/toy_mlp
Smoke variant (20 steps):
  python -m experiments.train --config=configs/toy_mlp.py:smoke=True --workdir=/tmp/toy
"""

from configs import common


def get_config(arg=None):
    args = common.parse_arg(arg, smoke=False)
    config = common.base_config()
    config.data.update(name="two_moons", batch_size=32)
    config.model = common.mlp_model(hidden_sizes=(3,))
    config.model.activation = "tanh"
    config.task = "binary"
    config.opt.update(name="adam", lr=0.03, schedule="constant")
    config.train.update(epochs=100.0, log_every=100, eval_every=500, steps_per_call=10, keep=1)
    config.eval.batch_size = 200
    return common.shrink_for_smoke(config) if args.smoke else config


def get_sweep(name):
    if name == "seeds":
        return common.product(seed=range(3))
    if name == "lr":
        return common.lr_seed_sweep(lrs=(0.003, 0.01, 0.03, 0.1), seeds=range(3))
    raise ValueError(f"unknown sweep {name!r}; this config has: seeds, lr")
