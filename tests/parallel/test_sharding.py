"""Layouts on the (data, fsdp, tensor) mesh: every layout trains the same numbers, parameters lie
where the rules say, FSDP divides the bytes a device holds, and a run moves between layouts."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from research.data import pipeline
from research.parallel import sharding
from research.run import experiment as experiment_lib
from research.sweeps.reproduce import final_params
from research.train import loop, metric_writer
from research.train import state as state_lib
from research.train import steps as steps_lib
from tests.conftest import StopAfterCalls
from tests.test_families import tiny_config

LAYOUTS = {
    "one device": {"num_devices": 1},
    "data=4": {"data": 4},
    "fsdp=4": {"data": 1, "fsdp": 4},
    "fsdp=2,tensor=2": {"data": 1, "fsdp": 2, "tensor": 2},
    "data=2,tensor=2": {"data": 2, "tensor": 2},
}


def on_mesh(config, layout: dict):
    config.mesh.update(num_devices=0, data=-1, fsdp=1, tensor=1)
    config.mesh.update(**layout)
    return config


def train_losses(workdir) -> list[float]:
    return [row["train/loss"] for row in metric_writer.read_metrics(workdir) if "train/loss" in row]


def test_one_and_four_devices_train_the_same(digits_config, tmp_path):
    assert jax.device_count() >= 4
    digits_config.train.steps = 30
    results, params = {}, {}
    for devices in (1, 4):
        digits_config.mesh.num_devices = devices
        workdir = str(tmp_path / f"devices{devices}")
        results[devices] = loop.train_and_evaluate(digits_config, workdir)
        params[devices] = final_params(workdir)
    for name in ("eval/test/loss", "eval/test/accuracy", "eval/test/f1"):
        np.testing.assert_allclose(results[1][name], results[4][name], rtol=1e-4, err_msg=name)
    for a, b in zip(jax.tree.leaves(params[1]), jax.tree.leaves(params[4]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", ["mlp", "lm"])
def test_every_layout_trains_the_same_losses(family, tfds_dir):
    """Eight train steps from the same state and batches on each layout: the same losses."""
    config = tiny_config(family, tfds_dir)
    built = experiment_lib.build(config)
    batches = pipeline.train_batches(built.train_data.arrays, batch_size=config.data.batch_size, seed=0)
    host_batches = [next(batches) for _ in range(8)]
    losses = {}
    # The language model on the layouts that split its parameters over FSDP and tensor axes
    # together (data=4 and fsdp=4 alone are the MLP's).
    layouts = {n: mesh for n, mesh in LAYOUTS.items() if family == "mlp" or n not in ("data=4", "fsdp=4")}
    for name, layout in layouts.items():
        placed = dataclasses.replace(built, mesh=sharding.make_mesh(on_mesh(config, layout).mesh))
        state = state_lib.initial_state(placed, config.seed)
        train_step = steps_lib.jit_steps(placed, config.seed, state).train
        losses[name] = []
        for batch in host_batches:
            state, step_metrics = train_step(state, sharding.put_batch(batch, placed.mesh))
            losses[name].append(float(step_metrics["loss"]))
    for name, curve in losses.items():
        np.testing.assert_allclose(curve, losses["one device"], rtol=2e-5, err_msg=name)


def lm_state(tfds_dir, layout: dict):
    experiment = experiment_lib.build(on_mesh(tiny_config("lm", tfds_dir), layout))
    return state_lib.initial_state(experiment, seed=0)


def test_parameters_and_their_moments_lie_where_the_rules_say(tfds_dir):
    state = lm_state(tfds_dir, LAYOUTS["fsdp=2,tensor=2"])
    block = state.params["trunk"]["block_0"]
    specs = {  # Tensor over heads, MLP units and vocab; FSDP over the largest other dimension.
        "mlp_in": (block["mlp_in"]["kernel"], P("fsdp", "tensor")),  # [embed 16, mlp 32]
        "mlp_out": (block["mlp_out"]["kernel"], P("tensor", "fsdp")),  # [mlp 32, embed 16]
        "query": (block["attention"]["query"]["kernel"], P("fsdp", "tensor", None)),  # [16, heads 2, 8]
        "out": (block["attention"]["out"]["kernel"], P("tensor", None, "fsdp")),  # [heads 2, 8, 16]
        "token_embed": (state.params["trunk"]["token_embed"]["embedding"], P("tensor", "fsdp")),
        "lm_head": (state.params["lm_head"]["kernel"], P("fsdp", "tensor")),  # [16, vocab 400]
        "norm": (block["mlp_norm"]["scale"], P("fsdp")),  # No names: FSDP only.
        "position_embed": (state.params["trunk"]["position_embed"]["embedding"], P("fsdp", None)),
    }
    for name, (array, spec) in specs.items():
        assert array.sharding.spec == spec, name
    adam = next(s for s in jax.tree.leaves(state.opt_state, is_leaf=lambda x: hasattr(x, "mu"))
                if hasattr(s, "mu"))
    assert adam.mu["trunk"]["block_0"]["mlp_in"]["kernel"].sharding.spec == P("fsdp", "tensor")
    assert adam.nu["lm_head"]["kernel"].sharding.spec == P("fsdp", "tensor")
    assert adam.count.sharding.spec == P()


def test_fsdp_over_four_devices_holds_a_quarter_of_the_bytes(tfds_dir):
    state = lm_state(tfds_dir, LAYOUTS["fsdp=4"])
    total = sum(leaf.nbytes for leaf in jax.tree.leaves(state.params))
    assert sharding.per_device_bytes(state.params) == total / 4
    moments = sum(leaf.nbytes for leaf in jax.tree.leaves(state.opt_state) if leaf.ndim)
    assert sharding.per_device_bytes(state.opt_state) <= moments / 4 + 16  # Adam's count is whole.
    for leaf in jax.tree.leaves(state.params):  # Each device holds its own quarter.
        assert {shard.data.size for shard in leaf.addressable_shards} == {leaf.size // 4}


def test_a_run_moves_from_four_devices_to_two_to_one(digits_config, tmp_path, monkeypatch):
    digits_config.train.update(steps=30, log_every=5, eval_every=30, checkpoint_every=10)
    reference = str(tmp_path / "reference")
    loop.train_and_evaluate(on_mesh(digits_config, LAYOUTS["fsdp=4"]), reference)

    moved = str(tmp_path / "moved")
    for layout, calls in (({"data": 1, "fsdp": 4}, 10), ({"num_devices": 2, "data": 2}, 10)):
        with monkeypatch.context() as patch:
            patch.setattr(loop, "StopRequest", lambda calls=calls, **_: StopAfterCalls(calls))
            loop.train_and_evaluate(on_mesh(digits_config, layout), moved)
    results = loop.train_and_evaluate(on_mesh(digits_config, LAYOUTS["one device"]), moved)

    sessions = json.load(open(f"{moved}/manifest.json"))["sessions"]
    assert [s["start_step"] for s in sessions] == [0, 10, 20]
    assert [tuple(s["mesh"]["shape"].values()) for s in sessions] == [(1, 4, 1), (2, 1, 1), (1, 1, 1)]
    assert ["heads", "tensor"] in sessions[0]["mesh"]["logical_rules"]
    params_bytes = [s["mesh"]["per_device_bytes"]["params"] for s in sessions]
    assert params_bytes[0] < params_bytes[2] / 3
    np.testing.assert_allclose(train_losses(moved), train_losses(reference), rtol=1e-5)
    assert results["step"] == 30


def test_a_tensor_axis_that_splits_no_parameter_is_warned_of(caplog):
    state = {"step": jax.ShapeDtypeStruct((), np.int32), "opt_state": (), "model_state": {},
             "params": {"dense": {"kernel": jax.ShapeDtypeStruct((8, 4), np.float32)}}}
    mesh = sharding.make_mesh(config_dict(data=2, fsdp=1, tensor=2))
    sharding.state_shardings(state, {"dense": {"kernel": P()}}, mesh)  # An MLP's: no logical names.
    assert any("mesh.tensor=2, but no parameter" in r.getMessage() for r in caplog.records)
    caplog.clear()
    sharding.state_shardings(state, {"dense": {"kernel": P("embed", "mlp")}}, mesh)
    assert not any("mesh.tensor" in r.getMessage() for r in caplog.records)


def config_dict(**sizes):
    import ml_collections

    return ml_collections.ConfigDict({"num_devices": 4, **sizes})
