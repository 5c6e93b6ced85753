"""scripts/slurm/train.sbatch under stand-ins for srun and scontrol (a shell script each on
PATH, logging their arguments): it runs from its repository wherever it is submitted, labels
output by task, requeues the job after the time limit's SIGTERM (exit 143) unless the job was
cancelled, and says in one line when it finds no repository .venv."""

import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "slurm", "train.sbatch")


def fake_slurm(bin_dir, log, *, srun_exit: int, state: str = "RUNNING", command: str = SCRIPT):
    os.makedirs(bin_dir, exist_ok=True)
    stand_ins = {
        "srun": f'echo "srun $PWD $*" >> {log}; exit {srun_exit}',
        "scontrol": (f'echo "scontrol $*" >> {log}\n'
                     f'if [ "$1" = show ]; then echo "   JobId=7 JobState={state} Reason=None"; '
                     f'echo "   Command={command}"; fi'),
    }
    for name, body in stand_ins.items():
        path = os.path.join(bin_dir, name)
        with open(path, "w") as f:
            f.write(f"#!/bin/bash\n{body}\n")
        os.chmod(path, 0o755)


def submit(tmp_path, **fake):
    log = tmp_path / "calls.log"
    fake_slurm(str(tmp_path / "bin"), log, **fake)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "SLURM_JOB_ID": "7",
           "SLURM_SUBMIT_DIR": str(tmp_path)}
    done = subprocess.run(["bash", SCRIPT, "--config=configs/digits_mlp.py", "--workdir=runs/x"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    return done, log.read_text().splitlines() if log.exists() else []


def test_runs_in_its_repository_from_anywhere_and_requeues_after_the_time_limit(tmp_path):
    done, calls = submit(tmp_path, srun_exit=143)
    assert done.returncode == 0, done.stderr
    srun = [c for c in calls if c.startswith("srun")]
    assert srun == [f"srun {ROOT} --kill-on-bad-exit=1 --label .venv/bin/python -m experiments.train "
                    "--distributed=auto --config=configs/digits_mlp.py --workdir=runs/x"]
    assert "scontrol requeue 7" in calls and "requeued to resume" in done.stderr


def test_a_cancelled_or_failed_job_is_not_requeued(tmp_path):
    done, calls = submit(tmp_path, srun_exit=143, state="CANCELLED")
    assert done.returncode == 143 and "scontrol requeue 7" not in calls
    assert "submit the same command again to resume" in done.stderr
    done, calls = submit(tmp_path / "failed", srun_exit=1)
    assert done.returncode == 1 and not any("requeue" in c for c in calls)


def test_a_job_whose_repository_has_no_venv_is_one_error(tmp_path):
    copy = tmp_path / "elsewhere" / "scripts" / "slurm"
    copy.mkdir(parents=True)
    shutil.copy(SCRIPT, copy)
    done, calls = submit(tmp_path, srun_exit=0, command=str(copy / "train.sbatch"))
    assert done.returncode == 2 and not any(c.startswith("srun") for c in calls)
    (line,) = done.stderr.strip().splitlines()
    assert "no repository with a .venv found" in line and "scripts/setup.sh" in line


@pytest.mark.parametrize("header", ["--gpus-per-node", "--gres"])
def test_the_script_asks_for_no_gpus_itself(header):
    with open(SCRIPT) as f:
        assert not any(line.startswith("#SBATCH") and header in line for line in f)
