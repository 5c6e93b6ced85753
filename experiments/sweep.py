"""Runs a sweep declared in a config file; rerunning the same command resumes it.

  python -m experiments.sweep --config=configs/fashion_mnist_mlp.py --sweep=lr \
      --sweep_dir=runs/mlp_lr [--parallel=2] [--dry_run] [--summarize_only] [--vectorize] \
      [--backend=ray --ray_address=auto] [--config.train.epochs=2 ...]

--config.KEY=VALUE flags apply to every run. The sweep directory gets one workdir per run,
sweep.json, status.json, logs/, results.csv, results.md and plots/.
"""

import signal
import sys

from absl import app, flags
from ml_collections import config_flags

from experiments import common

config_flags.DEFINE_config_file("config", None, "Config file that declares get_sweep.", lock_config=True)
flags.DEFINE_string("sweep", None, "Name passed to the config's get_sweep(name).")
flags.DEFINE_string("sweep_dir", None, "Directory for the sweep's runs and summary.")
flags.DEFINE_integer("parallel", 1, "Runs at a time (local backend).")
flags.DEFINE_bool("dry_run", False, "Print the runs' commands and exit.")
flags.DEFINE_bool("summarize_only", False, "Rebuild results.csv, results.md and plots/ only.")
flags.DEFINE_bool("vectorize", False, "Train runs that differ only in seed and numeric optimizer "
                  "hyperparameters together, in one vmapped step.")
flags.DEFINE_enum("backend", "local", ["local", "ray"], "Where runs execute.")
flags.DEFINE_string("ray_address", None, "Ray cluster address (default: $RAY_ADDRESS, else a local Ray "
                    "of our own).")
flags.DEFINE_float("ray_num_cpus", 1, "CPUs each run asks Ray for.")
flags.DEFINE_float("ray_num_gpus", 0, "GPUs each run asks Ray for.")
flags.mark_flags_as_required(["config", "sweep", "sweep_dir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from research.sweeps import launch

    f = flags.FLAGS
    config_spec, base_flags = common.config_spec_and_overrides(sys.argv)
    if f.backend == "ray":
        from research.sweeps.ray_backend import RayBackend
        backend = RayBackend(f.ray_address, num_cpus=f.ray_num_cpus, num_gpus=f.ray_num_gpus)
    else:
        backend = launch.LocalBackend(f.parallel)
    try:
        counts = common.run_or_exit(
            launch.run_sweep, config_spec, f.config, base_flags, f.sweep, f.sweep_dir, backend=backend,
            dry_run=f.dry_run, summarize_only=f.summarize_only, vectorize=f.vectorize)
    finally:
        backend.close()
    if "signal" in counts:
        signum = counts.pop("signal")
        summary = ", ".join(f"{n} {state}" for state, n in counts.items())
        print(f"sweep: stopped by {signal.Signals(signum).name}: {summary}; rerun the same command to "
              "resume", file=sys.stderr)
        sys.exit(128 + signum)
    if not f.dry_run:
        summary = ", ".join(f"{n} {state}" for state, n in counts.items())
        print(f"sweep: {summary}; see {f.sweep_dir}/results.md")
    sys.exit(1 if counts.get("failed") else 0)


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
