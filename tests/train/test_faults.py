"""Faults of the disk and the workdir during a run: each ends in one error line, nothing complete
is lost, and the rerun resumes to the numbers of an uninterrupted run."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import run_program
from tests.train.conftest import LONG_RUN, assert_same_run, saved_steps, start_long_run, wait_for_checkpoint

SAVE_IN_PROGRESS = "orbax-checkpoint-tmp"


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB file system of its own (a tmpfs), so a test can fill it or make it read-only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(directory, leave_bytes: int) -> str:
    """Fills `directory`'s file system but for `leave_bytes`; returns the filler's path."""
    filler = os.path.join(directory, "filler")
    free = shutil.disk_usage(directory).free
    with open(filler, "wb") as f:
        f.truncate(0)
        os.posix_fallocate(f.fileno(), 0, free - leave_bytes)
    return filler


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def stop_after_first_checkpoint(workdir, tfds_dir) -> list[int]:
    process = start_long_run(workdir, tfds_dir)
    wait_for_checkpoint(process, workdir)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    return saved_steps(workdir)


def rerun(workdir, tfds_dir):
    return run_program("experiments.train", *LONG_RUN, f"--workdir={workdir}",
                       f"--config.data.tfds_dir={tfds_dir}")


def test_disk_full_during_a_save_is_one_error_and_the_rerun_resumes(uninterrupted, tfds_dir, small_disk):
    workdir = str(small_disk / "run")
    saved = stop_after_first_checkpoint(workdir, tfds_dir)
    filler = fill(small_disk, leave_bytes=40 * 1024)  # Room for the logs, not for a checkpoint.

    full = rerun(workdir, tfds_dir)

    assert full.returncode == 1, full.stderr[-3000:]
    assert last_line(full.stderr).startswith(f"error: saving checkpoint {(saved[-1] // 20 + 1) * 20} in ")
    assert "(no space left on device)" in last_line(full.stderr)
    # Orbax may drop the oldest to make room; the latest complete one stays, and the line
    # names what is there.
    assert saved_steps(workdir)[-1] == saved[-1]
    assert f"complete checkpoints {saved_steps(workdir)} are intact" in last_line(full.stderr)
    assert "Traceback" not in full.stderr
    os.remove(filler)
    resumed = rerun(workdir, tfds_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(uninterrupted, workdir)


def test_sigkill_during_an_asynchronous_save_resumes_from_the_last_complete_one(
        uninterrupted, tfds_dir, tmp_path):
    workdir = str(tmp_path / "run")
    checkpoints = os.path.join(workdir, "checkpoints")
    process = start_long_run(workdir, tfds_dir)
    wait_for_checkpoint(process, workdir)
    caught = None
    while caught is None and process.poll() is None:  # A save takes tens of milliseconds.
        entries = os.listdir(checkpoints) if os.path.isdir(checkpoints) else []
        caught = next((name for name in entries if SAVE_IN_PROGRESS in name), None)
    process.kill()
    process.communicate()
    assert caught is not None, "the run finished before a save was seen in progress"
    complete = saved_steps(workdir)

    resumed = rerun(workdir, tfds_dir)

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {checkpoints} from step {complete[-1]}" in resumed.stderr
    assert not [name for name in os.listdir(checkpoints) if SAVE_IN_PROGRESS in name]
    assert_same_run(uninterrupted, workdir)


@pytest.fixture
def read_only(small_disk):
    """Makes `small_disk` read-only (a remount: permissions do not stop root)."""
    def make_read_only():
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    return make_read_only


def test_a_read_only_workdir_is_one_error_line(tfds_dir, small_disk, read_only):
    workdir = str(small_disk / "run")
    trained = run_program("experiments.train", "--config=configs/digits_mlp.py", "--config.train.steps=20",
                          f"--workdir={workdir}", f"--config.data.tfds_dir={tfds_dir}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    before = {name: os.path.getmtime(os.path.join(workdir, name)) for name in os.listdir(workdir)}
    read_only()

    again = run_program("experiments.train", "--config=configs/digits_mlp.py", "--config.train.steps=40",
                        f"--workdir={workdir}", f"--config.data.tfds_dir={tfds_dir}",
                        "--allow_config_change")
    fresh = run_program("experiments.train", "--config=configs/digits_mlp.py",
                        f"--workdir={small_disk / 'new'}", f"--config.data.tfds_dir={tfds_dir}")
    evaluated = run_program("experiments.evaluate", f"--workdir={workdir}")

    assert again.returncode == 1 and last_line(again.stderr) == (
        f"error: workdir {workdir} is not writable by this process; choose a writable --workdir "
        "or change its permissions")
    assert fresh.returncode == 1
    assert last_line(fresh.stderr).startswith(f"error: cannot make workdir {small_disk / 'new'}: "
                                              "read-only file system")
    assert evaluated.returncode == 1
    assert last_line(evaluated.stderr).startswith("error: read-only file system: ")
    for result in (again, fresh, evaluated):
        assert "Traceback" not in result.stderr
    assert {name: os.path.getmtime(os.path.join(workdir, name)) for name in os.listdir(workdir)} == before


def test_a_workdir_removed_during_the_run_is_one_error_line(tfds_dir, tmp_path):
    workdir = str(tmp_path / "run")
    process = start_long_run(workdir, tfds_dir, "--config.train.steps=20000")
    wait_for_checkpoint(process, workdir)
    while os.path.exists(workdir):  # The run may add files while rmtree walks.
        shutil.rmtree(workdir, ignore_errors=True)
    start = time.time()
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 1, stderr[-3000:]
    assert last_line(stderr) == (f"error: workdir {workdir} was removed while the run was writing to it; "
                                 "what it held is gone: rerun to start the run again")
    assert "Traceback" not in stderr
    assert time.time() - start < 60
