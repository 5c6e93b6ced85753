"""Gradual magnitude pruning: Zhu & Gupta's schedule, masks that keep the largest weights, pruned
weights that stay exactly zero, exact resume, and exports that keep the zeros."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from research.compress import prune as pruning
from research.errors import UserError
from research.serve import export
from research.sweeps.reproduce import final_params
from research.train import loop
from tests.conftest import StopAfterCalls
from tests.train.conftest import assert_same_run


def schedule(**fields) -> pruning.Pruning:
    config = ml_collections.ConfigDict({"target_sparsity": 0.8, "start_step": 10, "end_step": 50, "every": 10,
                                        "scope": "layer", "params": "kernel$", **fields})
    return pruning.Pruning.from_config(config, total_steps=100)


def test_the_schedule_is_zhu_and_gupta():
    p = schedule()
    for step, expected in ((0, 0.0), (10, 0.0), (30, 0.8 * (1 - 0.5 ** 3)), (50, 0.8), (90, 0.8)):
        np.testing.assert_allclose(p.sparsity_at(jnp.asarray(step)), expected, rtol=1e-6)
    assert [s for s in range(100) if p.updates_at(jnp.asarray(s))] == [10, 20, 30, 40, 50]
    assert schedule(end_step=0).end_step == 75  # Three quarters of training.
    assert pruning.Pruning.from_config(ml_collections.ConfigDict({"target_sparsity": 0.0}), 100) is None
    for bad, message in (({"scope": "row"}, "prune.scope"),
                         ({"end_step": 200}, "end_step <= the run's 100"),
                         ({"target_sparsity": 1.0}, "fraction"),
                         ({"params": "nothing"}, "matches no parameter")):
        with pytest.raises(UserError, match=message):
            schedule(**bad).initial_masks({"dense": {"kernel": jnp.ones((2, 2))}})


def test_masks_keep_the_largest_weights_per_layer_or_globally():
    rng = np.random.default_rng(0)
    params = {"a": {"kernel": jnp.asarray(rng.normal(size=(10, 10))), "bias": jnp.ones(10)},
              "b": {"kernel": jnp.asarray(3.0 * rng.normal(size=(20, 5)))}}
    layer = schedule().new_masks(params, jnp.asarray(0.6))
    assert set(layer) == {"a", "b"} and set(layer["a"]) == {"kernel"}  # Biases stay dense.
    for name in ("a", "b"):
        kept = np.abs(np.asarray(params[name]["kernel"]))[np.asarray(layer[name]["kernel"])]
        pruned = np.abs(np.asarray(params[name]["kernel"]))[~np.asarray(layer[name]["kernel"])]
        assert pruned.size == 60 and kept.min() >= pruned.max()
    glob = schedule(scope="global").new_masks(params, jnp.asarray(0.6))
    masks = np.concatenate([np.asarray(glob[n]["kernel"]).ravel() for n in ("a", "b")])
    assert (~masks).sum() == 120
    # The larger layer b keeps more of its weights when ranked together.
    assert np.asarray(glob["b"]["kernel"]).mean() > np.asarray(glob["a"]["kernel"]).mean()


def test_a_pruned_run_keeps_its_zeros_resumes_exactly_and_exports_them(digits_config, tmp_path, monkeypatch):
    digits_config.train.update(steps=40, log_every=5, eval_every=20, checkpoint_every=5)
    digits_config.prune.update(target_sparsity=0.75, start_step=0, end_step=30, every=5)
    whole = str(tmp_path / "whole")
    results = loop.train_and_evaluate(digits_config, whole)
    report = results["pruning"]
    assert report["sparsity"] == {"Dense_0/kernel": 0.75, "Dense_1/kernel": 0.75}
    params = final_params(whole)
    for name in ("Dense_0", "Dense_1"):  # Still exactly 75% zeros, ten steps after the last pruning.
        assert np.mean(np.asarray(params[name]["kernel"]) == 0) == 0.75
    assert report["nonzero_params"] == sum(int(np.count_nonzero(p)) for p in jax.tree.leaves(params))
    rows = [json.loads(line) for line in open(f"{whole}/metrics.jsonl") if "train/sparsity" in line]
    assert rows[-1]["train/sparsity"] == 0.75 and rows[0]["train/sparsity"] < 0.75

    resumed = str(tmp_path / "resumed")
    with monkeypatch.context() as patch:  # Stopped between two mask updates.
        patch.setattr(loop, "StopRequest", lambda **_: StopAfterCalls(12))
        assert loop.train_and_evaluate(digits_config, resumed)["status"] == "stopped"
    loop.train_and_evaluate(digits_config, resumed)
    assert_same_run(whole, resumed)

    signature = export.export_workdir(whole, checkpoint_name="latest", formats=("onnx",))
    assert signature["formats"]["onnx"]["max_abs_diff"] <= 1e-5
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(params)]
    assert signature["parameters"] == {"total": sum(leaf.size for leaf in leaves),
                                       "nonzero": sum(int(np.count_nonzero(leaf)) for leaf in leaves)}
    model = onnx.load(os.path.join(whole, "export", "model.onnx"))
    in_onnx = {(w.size, int((w == 0).sum())) for w in map(numpy_helper.to_array, model.graph.initializer)}
    for name in ("Dense_0", "Dense_1"):  # Each kernel is in the ONNX model with its zeros.
        kernel = np.asarray(params[name]["kernel"])
        assert (kernel.size, int((kernel == 0).sum())) in in_onnx
