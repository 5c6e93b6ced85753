"""Checkpoints: the only module that talks to Orbax.

A checkpoint at step N holds the train state after N steps and the data iterator's position,
so a resumed run continues with the batch an uninterrupted run would have seen next.
"""

import dataclasses
import os
import shutil
import sys
import threading
from typing import NamedTuple

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import traverse_util

from research import errors
from research import workdir as workdir_lib
from research.errors import UserError
from research.models import transformer

_policies = ocp.checkpoint_managers


def abstract_like(tree):
    """Shapes, dtypes and shardings of `tree`, the target Orbax restores into."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


class Resumed(NamedTuple):
    state: object
    loop_state: dict


class Checkpoints:
    """Saves every so often and keeps the latest `keep` plus the best by `best_metric`."""

    def __init__(self, directory: str, *, keep: int = 3, best_metric: str = "",
                 best_mode: str = "max", read_only: bool = False, exit_if_removed: str = ""):
        """`exit_if_removed`: while these checkpoints are open, a removal of the directory that
        holds `directory` ends the process with this message as its error line: Orbax, saving
        into a directory removed under it, can wait for ever (seen about one save in ten)."""
        self.directory = os.path.abspath(directory)
        policies = [_policies.LatestN(n=keep)]
        if best_metric:
            if best_mode not in ("min", "max"):
                raise UserError(f"checkpoint best_mode must be 'min' or 'max', not {best_mode!r}")
            policies.append(_policies.BestN(
                get_metric_fn=lambda metrics: metrics[best_metric], reverse=best_mode == "min",
                n=1, keep_checkpoints_without_metrics=False))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=_policies.AnyPreservationPolicy(policies),
            best_fn=(lambda metrics: metrics[best_metric]) if best_metric else None,
            best_mode=best_mode, read_only=read_only, create=not read_only,
            save_interval_steps=0 if read_only else 1,
            cleanup_tmp_directories=not read_only)
        self._manager = ocp.CheckpointManager(self.directory, options=options)
        self._saving = None  # The step whose asynchronous save may still be running.
        self._closed = threading.Event()
        if exit_if_removed and not read_only:
            threading.Thread(target=_exit_when_removed, args=(os.path.dirname(self.directory),
                             exit_if_removed, self._closed), daemon=True, name="removal-watch").start()

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state, *, loop_state: dict, data_iterator=None,
             metrics: dict | None = None) -> None:
        """Saves (asynchronously) the state after `step` steps, the data iterator's position and
        `loop_state` (JSON: what the loop needs to continue exactly, such as train metrics
        not yet logged); `metrics` are what `best_metric` is read from."""
        items = {"state": ocp.args.StandardSave(on_disk(state)), "loop": ocp.args.JsonSave(loop_state)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        self.wait()  # Orbax waits for the previous save anyway; this tells whose failure it is.
        if not os.path.isdir(self.directory):  # Orbax would make it again, and a new workdir with it.
            raise UserError(f"the checkpoint directory {self.directory} was removed during the run; "
                            "rerun to start the run again")
        try:
            self._manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)
        except Exception as e:  # Orbax and TensorStore raise many types for a failed write.
            raise self._save_failed(step, e) from e
        self._saving = step

    def wait(self) -> None:
        """Waits for the last save to finish; a failed one is a UserError that names the fix."""
        step, self._saving = self._saving, None
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            raise self._save_failed(step, e) from e

    def _save_failed(self, step: int | None, error: Exception) -> UserError:
        """The saves before `step` were complete when it began, and Orbax only renames a save
        into place once it is whole, so the checkpoints already listed are intact."""
        self._manager.reload()  # What is on disk: Orbax's list already lacks what it meant to delete.
        saved = sorted(s for s in self._manager.all_steps() if s != step)
        code = errors.os_errno(error)
        cause = (os.strerror(code).lower() if code is not None
                 else f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}")
        fix = errors.os_fix(code) or "rerun to resume from the latest"
        return UserError(f"saving checkpoint {step} in {self.directory} failed ({cause}); the run "
                         f"stopped, and its complete checkpoints {saved} are intact; {fix}")

    def resolve(self, which: str) -> int:
        """'latest', 'best' or a step number, as a saved step."""
        steps = self.steps()
        if not steps:
            raise UserError(f"no checkpoints in {self.directory}")
        if which == "latest":
            return steps[-1]
        if which == "best":  # No checkpoint with eval metrics yet: the latest is the best known.
            best = self._manager.best_step()
            return steps[-1] if best is None else best
        if which.isdigit() and int(which) in steps:
            return int(which)
        raise UserError(f"no checkpoint {which!r} in {self.directory}; saved steps: {steps}; "
                        "use latest, best or one of those steps")

    def restore(self, step: int, abstract_state):
        """The train state saved at `step`, placed like `abstract_state`."""
        try:
            return from_disk(self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(on_disk(abstract_state)))).state, abstract_state)
        except Exception as e:  # Orbax and TensorStore raise many types for a bad file.
            raise UserError(
                f"checkpoint {step} in {self.directory} is unreadable ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); choose another with --checkpoint "
                f"(saved steps: {self.steps()})") from e

    def _restore_for_resume(self, step: int, abstract_state, data_iterator) -> Resumed:
        items = {"state": ocp.args.StandardRestore(on_disk(abstract_state)), "loop": ocp.args.JsonRestore()}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        return Resumed(from_disk(restored.state, abstract_state), restored.loop)

    def restore_raw(self, step: int) -> dict:
        """The saved train state as a tree of arrays on this process's first device, without a
        target (for inspection and for warm starts from runs of another config), whatever the
        devices of the process that wrote it."""
        saved = self._saved_tree(step)
        one_device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=one_device),
                              saved)
        return self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))).state

    def _saved_tree(self, step: int):
        """The shapes and dtypes of the train state saved at `step` (its metadata, no arrays)."""
        with ocp.StandardCheckpointer() as reader:
            return reader.metadata(os.path.join(self.directory, str(step), "state")).item_metadata.tree

    def _check_layout(self, step: int, abstract_state) -> None:
        """Refuses a readable checkpoint whose train state has other arrays than `abstract_state`
        (another config, or a layout an older version saved), which would otherwise look unreadable
        and be moved aside."""
        try:
            saved = self._saved_tree(step)
        except Exception:  # noqa: BLE001  Unreadable metadata: the restore reports it.
            return
        # Shapes, not paths: Orbax may store an optimizer state's named tuples as other containers.
        shapes = lambda tree: sorted(  # noqa: E731
            tuple(leaf.shape) for leaf in jax.tree.leaves(tree) if hasattr(leaf, "shape"))
        wanted = on_disk(abstract_state)
        if set(saved) != set(wanted) or shapes(saved) != shapes(wanted):
            differ = sorted(set(saved) ^ set(wanted)) or ["the arrays' shapes"]
            raise UserError(
                f"checkpoint {step} in {self.directory} holds a train state of another layout than this "
                f"config's (differs in {', '.join(differ)}): it was saved by another config or an older "
                "version of the project; evaluate it with experiments.evaluate, or start a new workdir "
                "from it with --config.init_from")

    def restore_latest_good(self, abstract_state, data_iterator=None) -> Resumed | None:
        """Restores the newest readable checkpoint (the data iterator in place), or returns
        None when there is none.

        An unreadable checkpoint (a corrupt file, say) is moved to `<dir>_corrupt/` with a
        warning, never deleted, and the one before it is tried.
        """
        for step in reversed(self.steps()):
            self._check_layout(step, abstract_state)
            try:
                return self._restore_for_resume(step, abstract_state, data_iterator)
            except Exception as e:  # Orbax and TensorStore raise many types for a bad file.
                aside = os.path.join(self.directory + "_corrupt", str(step))
                logging.warning("checkpoint %d is unreadable (%s: %s); moved it to %s and trying "
                                "an older one", step, type(e).__name__, str(e).splitlines()[0], aside)
                os.makedirs(os.path.dirname(aside), exist_ok=True)
                shutil.move(os.path.join(self.directory, str(step)), aside)
                self._manager.reload()
        return None

    def close(self) -> None:
        """Waits for the last save to finish, then releases Orbax's threads."""
        try:
            self.wait()
        finally:
            self._closed.set()
            self._manager.close()

    def __enter__(self) -> "Checkpoints":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # Leaving on an error: that error is the one to report, not a second failed save.
            self.close()
        except Exception as close_error:
            logging.warning("while stopping on an error: %s", close_error)


def _exit_when_removed(directory: str, message: str, closed: threading.Event) -> None:
    """Ends the process with `message` once `directory` is gone (or replaced by another at its
    path). The run cannot go on without it, and the main thread may be stuck inside Orbax, so
    neither an exception nor a normal exit (which waits for Orbax's threads) would end it."""
    held = os.stat(directory)
    while not closed.wait(0.5):
        if workdir_lib.gone(directory, held) and not closed.is_set():
            sys.stderr.write(errors.error_line(message))
            sys.stderr.flush()
            os._exit(1)


def latest_params(workdir: str, which: str = "latest") -> tuple[int, dict]:
    """The step and params (host arrays, no target) of `workdir`'s checkpoint `which`
    (latest, best or a step)."""
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise UserError(f"{workdir} has no checkpoints/ directory: is it the workdir of a run?")
    with Checkpoints(os.path.join(workdir, "checkpoints"), read_only=True) as checkpoints:
        step = checkpoints.resolve(which)
        return step, checkpoints.restore_raw(step)["params"]


def on_disk(state) -> dict:
    """A train state as saved: the dict of its fields (a train state is a dataclass; a dict of
    the same fields is saved as it is)."""
    if dataclasses.is_dataclass(state):
        return {field.name: getattr(state, field.name) for field in dataclasses.fields(state)}
    return state


def from_disk(saved: dict, like):
    """`saved` in the type of the target it was restored into."""
    return type(like)(**saved) if dataclasses.is_dataclass(like) else saved


def latest_variables(workdir: str, which: str = "best") -> tuple[int, dict]:
    """The step and model variables (params and the non-trained collections, such as batch
    statistics; host arrays) of `workdir`'s checkpoint `which` (best by the run's own
    train.best_metric, latest, or a step)."""
    with _run_checkpoints(workdir) as checkpoints:
        step = checkpoints.resolve(which)
        saved = checkpoints.restore_raw(step)
    return step, {"params": saved["params"], **(saved.get("model_state") or {})}


def resolve(workdir: str, which: str = "best") -> int:
    """The step of `workdir`'s checkpoint `which` (best by the run's own train.best_metric,
    latest, or a step)."""
    with _run_checkpoints(workdir) as checkpoints:
        return checkpoints.resolve(which)


def _run_checkpoints(workdir: str) -> Checkpoints:
    """`workdir`'s checkpoints, read-only, ranked as the run ranked them."""
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise UserError(f"{workdir} has no checkpoints/ directory: is it the workdir of a run?")
    config = workdir_lib.load_config(workdir)
    return Checkpoints(os.path.join(workdir, "checkpoints"), read_only=True,
                       best_metric=config.train.best_metric, best_mode=config.train.best_mode)


def load_matching(workdir: str, target: dict, leading_axes: int = 0) -> dict:
    """`target` ({"params": ..., "model_state": ...}, arrays placed on devices) with every
    leaf that `workdir`'s latest checkpoint has at the same path taken from it (for
    `config.init_from`). Leaves it lacks, such as a new classifier head, keep their value
    from `target`; a leaf both have with different shapes is an error, and so is a
    checkpoint that shares no parameter with `target`. With `leading_axes`, target leaves
    have that many extra leading axes (runs stacked in a vectorized group), and each run gets
    the same saved value."""
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise UserError(f"init_from: {workdir} has no checkpoints/ directory")
    with Checkpoints(os.path.join(workdir, "checkpoints"), read_only=True) as checkpoints:
        step = checkpoints.resolve("latest")
        saved = checkpoints.restore_raw(step)
    saved = traverse_util.flatten_dict({k: saved.get(k) or {} for k in target}, sep="/")
    wanted = traverse_util.flatten_dict(target, sep="/")
    saved = transformer.match_block_layout(saved, wanted)  # Scanned blocks or not, either way.
    loaded, kept = {}, []
    for path, leaf in wanted.items():
        if path not in saved:
            kept.append(path)
            continue
        if np.shape(saved[path]) != leaf.shape[leading_axes:]:
            raise UserError(f"init_from: {path} has shape {np.shape(saved[path])} in {workdir} "
                            f"(step {step}) but {leaf.shape[leading_axes:]} in this model; change the "
                            "model's sizes to match or rename the part to start it afresh")
        loaded[path] = saved[path]
    if not any(path.startswith("params/") for path in loaded):
        raise UserError(f"init_from: {workdir} (step {step}) shares no parameter with this model")
    logging.info("init_from %s step %d: loaded %d arrays; newly initialised: %s",
                 workdir, step, len(loaded), kept or "none")
    return place(traverse_util.unflatten_dict(loaded, sep="/"), target, leading_axes)


def place(values: dict, target: dict, leading_axes: int = 0) -> dict:
    """`target` (arrays on devices) with each leaf that `values` (host arrays, one run's shapes)
    has at the same path replaced by it, cast to the target's dtype, laid out as the target
    leaf is and, with `leading_axes`, the same for every stacked run."""
    given = traverse_util.flatten_dict(values, sep="/")
    placed = {}
    for path, leaf in traverse_util.flatten_dict(target, sep="/").items():
        if path in given:
            value = np.broadcast_to(np.asarray(given[path], leaf.dtype), leaf.shape)
            leaf = jax.device_put(value, leaf.sharding)
        placed[path] = leaf
    return traverse_util.unflatten_dict(placed, sep="/")
