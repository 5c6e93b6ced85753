"""Starts one run as several processes of JAX's distributed runtime on this machine.

  .venv/bin/python scripts/launch.py --num_processes=2 -- .venv/bin/python -m experiments.train \
      --config=configs/digits_mlp.py --workdir=runs/digits_2p

Each process runs the command after `--` with --coordinator_address, --num_processes and
--process_id added, and its output lines come prefixed with its index. SIGTERM or Ctrl-C
checkpoints every process at the same step (exit 143); rerunning the same launch resumes.
The exit code is 0 when every process finished, else the first failing process's.
`--backend=ray [--ray_address=auto --ray_num_gpus=8 --ray_spread]` places the processes on a
Ray cluster instead (the repository and .venv at the same paths on every node); under SLURM,
use scripts/slurm/train.sbatch (README, "Many hosts").
"""

import os
import shutil
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import common  # noqa: E402
from research.parallel import processes  # noqa: E402

flags.DEFINE_integer("num_processes", 2, "Processes to start.", lower_bound=1)
flags.DEFINE_integer("port", 0, "Port of the coordinator (process 0) on 127.0.0.1; 0: a free one.",
                     lower_bound=0, upper_bound=65535)
flags.DEFINE_float("grace_s", 60.0, "After one process fails, seconds the others have to exit "
                   "before they are killed (local backend).")
flags.DEFINE_enum("backend", "local", ["local", "ray"], "local: children of this process; ray: one "
                  "process a bundle of a Ray placement group.")
flags.DEFINE_string("ray_address", None, "Ray cluster address (default: $RAY_ADDRESS, else a local Ray "
                    "of our own).")
flags.DEFINE_float("ray_num_cpus", 1, "CPUs each process asks Ray for.")
flags.DEFINE_float("ray_num_gpus", 0, "GPUs each process asks Ray for.")
flags.DEFINE_bool("ray_spread", False, "Each process on its own node (STRICT_SPREAD); default: packed.")
flags.DEFINE_float("ray_placement_timeout_s", 600, "Seconds to wait for Ray to place the processes "
                   "before giving up with one line (0: for ever).", lower_bound=0)


def main(argv):
    command = argv[1:]
    if not command:
        sys.exit("launch: error: give the command after --, e.g. "
                 "-- .venv/bin/python -m experiments.train ...")
    if shutil.which(command[0]) is None:
        sys.exit(f"launch: error: the command {command[0]!r} is not an executable file here (it runs as "
                 "given in every process): check the path after --")
    f = flags.FLAGS
    if f.backend == "ray":
        sys.exit(processes.run_on_ray(command, f.num_processes, address=f.ray_address,
                                      num_cpus=f.ray_num_cpus, num_gpus=f.ray_num_gpus, spread=f.ray_spread,
                                      cwd=os.getcwd(), placement_timeout_s=f.ray_placement_timeout_s))
    sys.exit(processes.run_local(command, f.num_processes, port=f.port, grace_s=f.grace_s))


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
