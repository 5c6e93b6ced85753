"""Bad input, as a new user gives it: one `error:` line, exit code 1, and existing workdirs
left exactly as they were. Config values are checked in the process (the loop, which every
program calls); what only the command line can get wrong runs the programs themselves."""

import copy
import os
import shutil
import subprocess
import sys

import pytest

from research.errors import UserError
from research.train import loop
from tests.conftest import ROOT, run_program


def snapshot(directory) -> dict:
    """Every file under `directory` with its size and modification time."""
    return {os.path.join(root, name): (os.stat(os.path.join(root, name)).st_size,
                                       os.stat(os.path.join(root, name)).st_mtime_ns)
            for root, _, files in os.walk(directory) for name in files}


@pytest.fixture(scope="module")
def finished(tfds_dir, tmp_path_factory):
    """A finished digits run whose workdir every bad command is pointed at."""
    from configs import digits_mlp

    config = digits_mlp.get_config()
    config.data.tfds_dir = tfds_dir
    config.train.update(steps=10, eval_every=10, checkpoint_every=10)
    workdir = str(tmp_path_factory.mktemp("finished") / "run")
    loop.train_and_evaluate(config, workdir)
    return config, workdir


# (override of the finished run's config, a fragment of the one line the user gets)
BAD_VALUES = [
    ({"data.batch_size": 0}, "data.batch_size=0; it must be above 0"),
    ({"data.batch_size": -8}, "data.batch_size=-8"),
    ({"data.batch_size": 30}, "not divisible by the 4 ways a batch is split"),
    ({"data.batch_size": 30, "mesh.data": 1, "mesh.fsdp": 4}, "(mesh data x fsdp); use a multiple of 4"),
    ({"eval.batch_size": 0}, "eval.batch_size=0"),
    ({"data.max_len": 0}, "data.max_len=0"),
    ({"data.vocab_size": 0}, "data.vocab_size=0"),
    ({"data.name": "nope"}, "data.name='nope'; choose one of"),
    ({"data.source": "web"}, "data.source='web'"),
    ({"data.augment": "nope"}, "unknown op 'nope'"),
    ({"data.augment": "flip_lr(q=1)"}, "op 'flip_lr' takes"),
    ({"model.name": "nope"}, "model.name='nope'"),
    ({"model.name": "cnn"}, "has no field(s)"),
    ({"opt.name": "lamb"}, "opt.name='lamb'"),
    ({"opt.schedule": "step"}, "opt.schedule='step'"),
    ({"opt.lr": -1.0}, "opt.lr=-1.0; it must be 0 or more"),
    ({"opt.lr": float("nan")}, "opt.lr=nan"),
    ({"opt.eps": 0.0}, "opt.eps=0.0"),
    ({"opt.warmup_steps": -1}, "opt.warmup_steps=-1"),
    ({"opt.weight_decay": -0.1}, "opt.weight_decay=-0.1"),
    ({"opt.clip_norm": -1.0}, "opt.clip_norm=-1.0"),
    ({"opt.end_lr_factor": 1.5}, "opt.end_lr_factor=1.5"),
    ({"opt.momentum": 1.0}, "opt.momentum=1.0"),
    ({"opt.b1": -0.1}, "opt.b1=-0.1"),
    ({"opt.b2": 1.0}, "opt.b2=1.0"),
    ({"train.epochs": -1.0}, "train.epochs=-1.0"),
    ({"train.steps": -5}, "train.steps=-5"),
    ({"train.steps": 0, "train.epochs": 0.0}, "nothing to train"),
    ({"train.log_every": 0}, "train.log_every=0"),
    ({"train.eval_every": -1}, "train.eval_every=-1"),
    ({"train.checkpoint_every": -1}, "train.checkpoint_every=-1"),
    ({"train.keep": 0}, "train.keep=0"),
    ({"train.steps_per_call": 0}, "train.steps_per_call=0"),
    ({"train.best_mode": "up"}, "train.best_mode='up'"),
    ({"train.best_metric": "eval/test/nope"}, "is not a metric this run logs"),
    ({"train.best_metric": "eval/train/accuracy"}, "is not a metric this run logs"),
    ({"eval.split": "validation"}, "eval/validation/accuracy"),  # The best metric names the split.
    ({"eval.split": "validation", "train.best_metric": ""}, "has no split 'validation'"),
    ({"mesh.num_devices": -1}, "mesh.num_devices=-1"),
    ({"mesh.num_devices": 64}, "only 4 devices exist"),
    ({"mesh.fsdp": 3}, "4 devices do not divide into 3s"),
    ({"mesh.data": 2, "mesh.fsdp": 1}, "the mesh needs 2 devices but this run has 4"),
    ({"mesh.fsdp": -1}, "at most one of mesh.data, mesh.fsdp and mesh.tensor may be -1"),
    ({"mesh.tensor": 0}, "mesh.tensor=0; it must be a size of 1 or more"),
    ({"seed": -1}, "seed=-1"),
    ({"init_from": "/nonexistent/run"}, "init_from: /nonexistent/run has no checkpoints/"),
    ({"train.steps": 20}, "holds a run with a different config"),
]


@pytest.mark.parametrize("overrides,message", BAD_VALUES, ids=[str(o) for o, _ in BAD_VALUES])
def test_a_bad_config_value_is_one_error_and_touches_nothing(finished, overrides, message):
    config, workdir = finished
    config = copy.deepcopy(config)
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    before = snapshot(workdir)
    with pytest.raises(UserError, match=None) as raised:
        loop.train_and_evaluate(config, workdir)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert snapshot(workdir) == before


def bad_files(tmp_path) -> dict:
    """Files and directories the command-line cases point at."""
    (tmp_path / "syntax.py").write_text("def get_config(:\n")
    (tmp_path / "a_file").write_text("")
    (tmp_path / "not_a_workdir").mkdir()
    (tmp_path / "not_a_workdir" / "notes.txt").write_text("mine")
    truncated = tmp_path / "truncated_idx"
    truncated.mkdir()
    for name in os.listdir("/usr/share/datasets/fashion-mnist"):
        data = open(os.path.join("/usr/share/datasets/fashion-mnist", name), "rb").read()
        (truncated / name).write_bytes(data[: len(data) // 2])
    return {"tmp": str(tmp_path), "truncated": str(truncated)}


TRAIN = ["experiments.train", "--config=configs/digits_mlp.py"]
# (program and flags; {workdir} is the finished run, {tmp} a scratch directory)
BAD_COMMANDS = [
    ["experiments.train", "--config=missing.py", "--workdir={tmp}/w"],
    ["experiments.train", "--config={tmp}/syntax.py", "--workdir={tmp}/w"],
    [*TRAIN[:1], "--config=configs/digits_mlp.py:no_such_arg=1", "--workdir={workdir}"],
    ["experiments.train", "--config=configs/lm.py:size=nonsense", "--workdir={tmp}/w"],  # get_config raises.
    [*TRAIN, "--config.no_such_key=1", "--workdir={workdir}"],
    [*TRAIN, "--config.opt.lr=fast", "--workdir={workdir}"],
    [*TRAIN, "--config.opt.lr=-1.0", "--workdir={workdir}"],
    [*TRAIN, "--workdir={tmp}/a_file"],
    [*TRAIN, "--workdir={tmp}/not_a_workdir"],
    ["experiments.train", "--config=configs/fashion_mnist_mlp.py", "--config.data.source=local",
     "--config.data.idx_dir={truncated}", "--config.data.tfds_dir={tmp}/tfds", "--workdir={tmp}/w"],
    ["experiments.evaluate", "--workdir={tmp}/nothing_here"],
    ["experiments.evaluate", "--workdir={workdir}", "--checkpoint=12345"],
    ["experiments.sweep", "--config=configs/digits_mlp.py", "--sweep=nope", "--sweep_dir={tmp}/s"],
    # Flags a program cannot honour are refused before it starts (and a server never listens).
    ["experiments.serve", "--workdir={workdir}", "--port=70000"],
    ["experiments.serve", "--workdir={workdir}", "--max_batch=0"],
    ["experiments.serve", "--workdir={workdir}", "--batch_wait_ms=-1"],
    ["experiments.serve", "--workdir={workdir}", "--host=192.0.2.77"],  # Not this machine's address.
    ["experiments.generate", "--workdir={workdir}", "--prompt="],
    ["experiments.generate", "--workdir={workdir}", "--prompt=x", "--num_samples=0"],
    ["experiments.generate", "--workdir={workdir}", "--prompt=x", "--temperature=-1"],
    ["experiments.generate", "--workdir={workdir}", "--prompt=x", "--max_new_tokens=0"],
]


@pytest.mark.parametrize("command", BAD_COMMANDS, ids=[" ".join(c[1:3]) for c in BAD_COMMANDS])
def test_a_bad_command_is_one_error_line_and_touches_nothing(finished, tfds_dir, tmp_path, command):
    config, workdir = finished
    if not os.path.isdir("/usr/share/datasets/fashion-mnist") and "{truncated}" in " ".join(command):
        pytest.skip("needs the Fashion-MNIST files (scripts/setup.sh installs them)")
    have_fashion_mnist = os.path.isdir("/usr/share/datasets/fashion-mnist")
    paths = bad_files(tmp_path) if have_fashion_mnist else {"tmp": str(tmp_path)}
    flags = [arg.format(workdir=workdir, **paths) for arg in command[1:]]
    if command[0] == "experiments.train" and "digits" in flags[0]:
        flags.append(f"--config.data.tfds_dir={tfds_dir}")
    before = snapshot(workdir)
    done = run_program(command[0], *flags, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr[-2000:]
    assert lines and lines[-1].startswith("error: "), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert snapshot(workdir) == before
    assert not os.path.exists(os.path.join(str(tmp_path), "w", "config.json"))


def test_evaluating_a_workdir_whose_only_checkpoint_is_corrupt(finished, tmp_path):
    _, workdir = finished
    copy_of_run = str(tmp_path / "run")
    shutil.copytree(workdir, copy_of_run)
    step_dir = os.path.join(copy_of_run, "checkpoints", "10")
    for metadata in ("_CHECKPOINT_METADATA", os.path.join("state", "_METADATA")):  # Orbax's JSON.
        with open(os.path.join(step_dir, metadata), "w") as f:
            f.write("{not json")
    before = snapshot(copy_of_run)
    done = run_program("experiments.evaluate", f"--workdir={copy_of_run}", "--checkpoint=latest")
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("error: checkpoint 10 in "), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert snapshot(copy_of_run) == before


LAUNCH = ["--", sys.executable, "-m", "experiments.train", "--config=configs/digits_mlp.py"]
BAD_LAUNCHES = [
    ["--num_processes=2", "--", "/no/such/program"],
    ["--port=70000", *LAUNCH],
    ["--num_processes=0", *LAUNCH],
    ["--num_processes=2"],  # No command.
    ["--num_processes=2", *LAUNCH, "--workdir={tmp}/w", "--config.no_such_key=1"],  # Every process refuses.
]


@pytest.mark.parametrize("flags", BAD_LAUNCHES, ids=[" ".join(f[:3]) for f in BAD_LAUNCHES])
def test_a_bad_launch_is_one_line_without_advice_to_rerun(tmp_path, flags):
    flags = [arg.format(tmp=tmp_path) for arg in flags]
    done = subprocess.run([sys.executable, "scripts/launch.py", *flags], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 1, output[-2000:]
    last = output.splitlines()[-1]
    assert last.startswith(("error: ", "launch: error: ", "launch: every process failed")), output[-2000:]
    assert "Traceback" not in output and "rerun" not in last and len(output.splitlines()) <= 3, output
    assert not (tmp_path / "w" / "config.json").exists()
