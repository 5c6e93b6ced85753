"""Reruns a finished run from its config.json into a new workdir and compares the two."""

import json
import os

import jax
import numpy as np
from absl import logging

from research import workdir as workdir_lib
from research.errors import UserError
from research.run import checkpoint
from research.train import loop


def _read_json(path: str) -> dict:
    if not os.path.exists(path):
        raise UserError(f"{path} does not exist: the run has not finished")
    with open(path) as f:
        return json.load(f)


def final_params(workdir: str):
    """The params of a workdir's latest checkpoint, as host arrays."""
    return checkpoint.latest_params(workdir)[1]


def compare_workdirs(workdir_a: str, workdir_b: str, rtol: float = 1e-5, atol: float = 1e-6) -> dict:
    """Whether results.json and the latest checkpoint's params agree bit for bit, by how much
    they differ where they do not, and whether they are `close`: metrics within `rtol`/`atol`
    and params within 10x that, what a vectorized run and its rerun alone agree to
    (tests/sweeps/test_vectorized.py)."""
    results_a = _read_json(os.path.join(workdir_a, "results.json"))
    results_b = _read_json(os.path.join(workdir_b, "results.json"))
    params_a, params_b = final_params(workdir_a), final_params(workdir_b)
    same_structure = jax.tree.structure(params_a) == jax.tree.structure(params_b)
    leaves = list(zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b), strict=False))
    floats = [k for k, v in results_a.items() if isinstance(v, float)]
    close = (same_structure and results_a.keys() == results_b.keys()
             and all(np.isclose(results_a[k], results_b[k], rtol=rtol, atol=atol) for k in floats)
             and all(np.allclose(a, b, rtol=10 * rtol, atol=atol) for a, b in leaves))
    return {
        "results_identical": results_a == results_b,
        "params_identical": same_structure and all(np.array_equal(a, b) for a, b in leaves),
        "close": bool(close),
        "max_abs_param_diff": max((float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                                   for a, b in leaves if np.shape(a) == np.shape(b)), default=0.0),
        "metric_diffs": {k: results_b.get(k, np.nan) - v for k, v in results_a.items()
                         if isinstance(v, float) and results_b.get(k) != v},
        "num_params": int(sum(np.size(a) for a, _ in leaves)),
    }


def environment_differences(manifest: dict) -> list[str]:
    """What differs between the machine/stack that made a run and this one."""
    now = workdir_lib.environment()
    differences = []
    for key in ("git_commit", "git_dirty", "python", "backend", "process_count"):
        if manifest.get(key) != now[key]:
            differences.append(f"{key}: {manifest.get(key)} -> {now[key]}")
    for package, version in manifest.get("packages", {}).items():
        if now["packages"].get(package) != version:
            differences.append(f"{package}: {version} -> {now['packages'].get(package)}")
    if len(manifest.get("devices", [])) != len(now["devices"]):
        differences.append(f"devices: {len(manifest.get('devices', []))} -> {len(now['devices'])}")
    return differences


def reproduce(workdir: str, into: str) -> dict:
    """Trains `workdir`'s config into `into` (resuming it if already there) and compares."""
    config = workdir_lib.load_config(workdir)
    manifest = _read_json(os.path.join(workdir, "manifest.json"))
    _read_json(os.path.join(workdir, "results.json"))  # Only finished runs can be compared.
    differences = environment_differences(manifest)
    for difference in differences:
        logging.warning("differs from the original run: %s", difference)
    vectorized_with = max((s.get("vectorized_with", 0) for s in manifest.get("sessions", [])), default=0)
    if vectorized_with:
        logging.warning("%s was trained vectorized, in one vmapped step with %d runs; the rerun trains "
                        "it alone, which agrees to float rounding, not bit for bit", workdir, vectorized_with)
    result = loop.train_and_evaluate(config, into)
    if result["status"] != "finished":
        raise UserError(f"the rerun in {into} stopped at step {result['step']}; rerun to finish it")
    return {**compare_workdirs(workdir, into), "environment_differences": differences, "into": into,
            "vectorized_with": vectorized_with}


def default_into(workdir: str) -> str:
    """Where a rerun goes by default: beside the run (`<workdir>.reproduced`), or for a run of
    a sweep, beside the sweep directory (`<sweep_dir>.reproduced/<run>`), so the sweep's own
    directory keeps its runs only."""
    workdir = os.path.abspath(workdir)
    parent, name = os.path.split(workdir)
    if os.path.exists(os.path.join(parent, "sweep.json")):
        return os.path.join(f"{parent}.reproduced", name)
    return f"{workdir}.reproduced"
