"""Starts one run as several processes of JAX's distributed runtime on this machine.

  .venv/bin/python scripts/launch.py --num_processes=2 -- .venv/bin/python -m experiments.train \
      --config=configs/digits_mlp.py --workdir=runs/digits_2p

Each process runs the command after `--` with --coordinator_address, --num_processes and
--process_id added, and its output lines come prefixed with its index. SIGTERM or Ctrl-C
checkpoints every process at the same step (exit 143); rerunning the same launch resumes.
The exit code is 0 when every process finished, else the first failing process's. On a
cluster, start the processes with its own tools instead (README, "Many hosts").
"""

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from research.parallel import processes  # noqa: E402

flags.DEFINE_integer("num_processes", 2, "Processes to start.")
flags.DEFINE_integer("port", 0, "Port of the coordinator (process 0) on 127.0.0.1; 0: a free one.")
flags.DEFINE_float("grace_s", 60.0, "After one process fails, seconds the others have to exit "
                   "before they are killed.")


def main(argv):
    command = argv[1:]
    if not command:
        raise app.UsageError("give the command after --, e.g. -- .venv/bin/python -m experiments.train ...")
    if flags.FLAGS.num_processes < 1:
        raise app.UsageError("--num_processes must be 1 or more")
    sys.exit(processes.run_local(command, flags.FLAGS.num_processes, port=flags.FLAGS.port,
                                 grace_s=flags.FLAGS.grace_s))


if __name__ == "__main__":
    app.run(main)
