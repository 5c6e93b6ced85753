"""Trains a config into a workdir; rerunning the same command resumes it.

  python -m experiments.train --config=configs/fashion_mnist_cnn.py --workdir=runs/cnn \
      [--config.opt.lr=3e-3 ...] [--allow_config_change]
  python -m experiments.train --config=configs/lm.py:size=1b --dry_run   # plan it, run nothing
"""

import json
import sys

from absl import app, flags
from ml_collections import config_flags

from experiments import common

config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
flags.DEFINE_bool("allow_config_change", False,
                  "Continue a workdir whose config.json differs from this config.")
flags.DEFINE_bool("dry_run", False, "Print what the train step needs (parameters, FLOPs per token, "
                  "bytes per device on the mesh), from shapes alone; train nothing (text models).")
common.define_distributed_flags()
flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if flags.FLAGS.dry_run:
        from research.train import plan

        print(json.dumps(common.run_or_exit(plan.plan, flags.FLAGS.config), indent=1))
        return
    if not flags.FLAGS.workdir:
        raise app.UsageError("--workdir is required (except with --dry_run)")
    from research.train import loop  # Imported after flag parsing: --help stays fast.

    result = common.run_or_exit(
        loop.train_and_evaluate, flags.FLAGS.config, flags.FLAGS.workdir,
        allow_config_change=flags.FLAGS.allow_config_change)
    if result["status"] == "stopped":
        sys.exit(128 + result["signal"])
    print(common.summary_line(result))


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
