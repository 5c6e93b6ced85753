"""A run's workdir: its config.json (a rerun with another config is refused) and its
manifest.json (what produced it: commit, packages, devices, argv, times)."""

import contextlib
import datetime
import fcntl
import importlib.metadata
import json
import os
import platform
import subprocess
import sys

import jax
from absl import logging

from research import errors
from research.errors import UserError

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "tensorflow-datasets",
            "numpy", "ml-collections", "absl-py")
# Config fields that change where arrays lie, how data is read or where metrics are mirrored,
# never a number.
RUNTIME_FIELDS = ("mesh.", "data.in_memory", "data.workers", "log.")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return diffs


@contextlib.contextmanager
def exclusive(workdir: str):
    """Holds `workdir` for this process (an flock on the directory itself, made if missing and
    removed again if the process fails before writing anything in it): a second process is
    refused with one line. The kernel releases the lock when the process ends, however it ends,
    so a killed run never leaves a stale one. A workdir this process cannot write to, and one
    removed while held, are errors that say so."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise UserError(f"workdir {workdir} is a file, not a directory; choose another --workdir")
    created = not os.path.exists(workdir)
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot make workdir {workdir}: {errors.describe_os_error(e)}") from e
    if not os.access(workdir, os.W_OK):  # Read-only mounts too, for root as well.
        raise UserError(f"workdir {workdir} is not writable by this process; choose a writable "
                        "--workdir or change its permissions")
    descriptor = os.open(workdir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"workdir {workdir} is in use by a live run in another process; wait for "
                            "it to finish or stop it (SIGTERM checkpoints it), or choose another "
                            "--workdir") from None
        yield
    except BaseException as e:
        if _removed(workdir, descriptor):
            if isinstance(e, Exception):
                raise UserError(removed_message(workdir)) from e
        elif created and not os.listdir(workdir):
            os.rmdir(workdir)
        raise
    finally:
        os.close(descriptor)  # Releases the lock.


def removed_message(workdir: str) -> str:
    return (f"workdir {workdir} was removed while the run was writing to it; what it held is gone: "
            "rerun to start the run again")


def _removed(workdir: str, descriptor: int) -> bool:
    """Whether the directory held through `descriptor` was removed (a library may have made a
    new one at the same path since)."""
    held = os.fstat(descriptor)
    return held.st_nlink == 0 or gone(workdir, held)


def gone(path: str, held: os.stat_result) -> bool:
    """Whether the file or directory `held` (its stat) is no longer at `path`."""
    try:
        return not os.path.samestat(held, os.stat(path))
    except FileNotFoundError:
        return True


def prepare(workdir: str, config_dict: dict, *, allow_config_change: bool = False,
            write: bool = True) -> None:
    """Makes `workdir` the home of this config, or checks that it already is (only checks
    without `write`: the processes of a run other than the first).

    A non-empty directory without config.json, or one whose config.json differs, is refused
    (the latter unless `allow_config_change`, which keeps the old file as config.<n>.json).
    """
    path = os.path.join(workdir, "config.json")
    config_json = json.loads(json.dumps(config_dict))  # Tuples become lists, as when read back.
    if os.path.exists(path):
        with open(path) as f:
            old = migrate(json.load(f))
        diffs = _config_diff(old, config_json)
        if diffs and all(diff.startswith(RUNTIME_FIELDS) for diff in diffs):
            # Where arrays lie changes no number beyond float rounding, how data is read none:
            # the run continues (checkpoints restore onto any mesh) and config.json says how.
            logging.info("workdir %s: continuing with another layout or data reading (%s)", workdir,
                         "; ".join(diffs))
            if write:
                write_json(path, config_json)
            return
        if not diffs or (not write and allow_config_change):
            return
        if not allow_config_change:
            raise UserError(
                f"workdir {workdir} holds a run with a different config ({'; '.join(diffs[:5])}"
                f"{'; …' if len(diffs) > 5 else ''}); use a new --workdir, or pass "
                "--allow_config_change to continue that run with this config")
        n = 1
        while os.path.exists(os.path.join(workdir, f"config.{n}.json")):
            n += 1
        os.replace(path, os.path.join(workdir, f"config.{n}.json"))
    elif os.path.isdir(workdir) and os.listdir(workdir):
        raise UserError(f"workdir {workdir} is not empty and has no config.json, so it is not a "
                        "run of this project; choose a new or empty --workdir")
    if not write:
        return
    os.makedirs(workdir, exist_ok=True)
    write_json(path, config_json)


# Fields configs gained after runs had been made without them, each with the value that
# reproduces those runs (what they did before the field existed). An old config.json is
# brought up to today's fields here, once, when it is read; nothing else asks whether a
# config has a field.
ADDED_FIELDS = {
    "task": "auto",
    "init_from": "",
    "data.classes": [],
    "data.augment": "",
    "data.tokenizer": "bpe",
    "data.workers": 0,
    "data.in_memory": "auto",
    "data.in_memory_max_gb": 4.0,
    "train.steps_per_call": 1,
    "train.grad_accum_steps": 1,
    "train.early_stop_patience": 0,
    "train.profile_steps": "",
    "eval.max_batches": 0,
    "eval.periodic_max_batches": 0,
    "mesh": {"num_devices": 0, "data": -1, "fsdp": 1, "tensor": 1},
    "log": {"wandb_project": "", "wandb_entity": "", "wandb_mode": "auto"},
    "prune": {"target_sparsity": 0.0, "start_step": 0, "end_step": 0, "every": 100, "scope": "layer",
              "params": "kernel$"},
    "quant": {"mode": "", "bits": 8},
    "distill": {"teacher": "", "checkpoint": "best", "temperature": 2.0, "alpha": 0.5},
    "shrink": {"source": "", "checkpoint": "best", "criterion": "bn_scale"},
}


# Model fields added after runs were made: the families that have them, and the value.
ADDED_MODEL_FIELDS = {
    "head_dim": (("lm", "transformer", "vit"), 0),
    "scan": (("lm", "transformer", "vit"), False),
}


def migrate(config_dict: dict) -> dict:
    """`config_dict` (a config.json's) with every field in ADDED_FIELDS and, for its model's
    family, ADDED_MODEL_FIELDS it lacks."""
    migrated = json.loads(json.dumps(config_dict))
    model = migrated.get("model", {})
    for name, (families, value) in ADDED_MODEL_FIELDS.items():
        if model.get("name") in families:
            model.setdefault(name, value)
    for path, value in ADDED_FIELDS.items():
        *parents, name = path.split(".")
        section = migrated
        for parent in parents:
            section = section.setdefault(parent, {})
        if isinstance(value, dict):
            section[name] = {**value, **section.get(name, {})}
        else:
            section.setdefault(name, value)
    return migrated


def load_config(workdir: str):
    """The resolved config a run was trained with, from its config.json, with today's fields."""
    import ml_collections

    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise UserError(f"{workdir} has no config.json: not a workdir of this project")
    with open(path) as f:
        return ml_collections.ConfigDict(migrate(json.load(f)))


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", "-C", _REPO, *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    """What produced a run, as far as it can change the numbers."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
        "process_count": jax.process_count(),
    }


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def record_session(workdir: str, session: dict) -> None:
    """Adds or updates this session's entry (by its "id") in manifest.json; the environment is
    refreshed. Sessions of older runs have no id and are kept as they are."""
    path = os.path.join(workdir, "manifest.json")
    manifest = {"sessions": []}
    if os.path.exists(path):
        with open(path) as f:
            manifest = json.load(f)
    # Not by "started": two sessions of one process can start within its second.
    sessions = [s for s in manifest["sessions"] if s.get("id") != session["id"]]
    for earlier in sessions:
        # Still "running" when another session starts: it ended without a word (SIGKILL, out
        # of memory, a lost node). Said as far as this session can tell.
        if earlier.get("status") == "running":
            earlier["status"] = "lost"
            earlier["lost"] = ("it ended without recording how (killed outright, out of memory or its "
                               f"machine lost); the next session, {session['id']}, started "
                               f"{session.get('started', '?')} from step {session.get('start_step', '?')}")
    manifest.update(environment())
    manifest["sessions"] = sessions + [session]
    write_json(path, manifest)


def write_json(path: str, obj) -> None:
    """Written to a temporary file and renamed, so a kill never leaves half a file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
