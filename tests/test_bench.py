"""`python -m benchmarks` runs and reports; its PyTorch twins have our models' parameter counts
(skipped without the `bench` extra)."""

import json
import os

import jax
import ml_collections
import numpy as np
import optax
import pytest

from research import models
from research.train.state import init_state
from tests.conftest import run_program


def test_bench_measures_the_step_and_the_pipeline(tfds_dir, tmp_path):
    json_out = tmp_path / "bench.json"
    env = {**os.environ, "TFDS_DATA_DIR": tfds_dir}
    done = run_program(
        "benchmarks", "--config=configs/digits_mlp.py", "--config=lm:size=tiny", "--windows=2",
        "--window_seconds=0.05", "--warmup_steps=1", "--matmul_size=128", "--e2e_steps=-1",
        "--startup_config=", f"--json_out={json_out}", timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(json_out.read_text())
    row, lm_row = report["results"]
    assert row["step"]["examples_per_sec"] > 0 and row["pipeline"]["examples_per_sec"] > 0
    # digits_mlp is 64-32-10: a multiply-add per weight, three passes (forward, two backward).
    assert row["flops_per_example"] == pytest.approx(3 * 2 * (64 * 32 + 32 * 10), rel=0.5)
    assert "| configs/digits_mlp.py | 32 |" in done.stdout
    # The tiny LM (hidden 16, 1 block, 64 tokens, vocab 400): 6 x its non-embedding parameters
    # (block 3,280, final LayerNorm 32, head 6,800) + attention 12 x 1 x 16 x 64, a token.
    lm = lm_row["lm"]
    assert lm["parameters"] == 17_536 and lm["tokens_per_example"] == 64
    assert lm["model_flops_per_token"] == 6 * (3_280 + 32 + 6_800) + 12 * 16 * 64
    assert lm["step"]["tokens_per_sec"] == pytest.approx(64 * lm_row["step"]["examples_per_sec"])
    gflops_per_device = lm["step"]["tokens_per_sec"] * lm["model_flops_per_token"] / 1e9 / lm_row["devices"]
    assert lm["step"]["mfu"] == pytest.approx(gflops_per_device / report["matmul_peak"]["gflops"])
    assert "| lm:size=tiny | 17,536 | 16 x 64 |" in done.stdout


def tiny_transformer():
    return ml_collections.ConfigDict({
        "name": "transformer", "max_len": 16, "hidden": 16, "depth": 2, "heads": 2, "mlp_dim": 32,
        "dropout": 0.1, "causal": False, "pool": "mean"})


@pytest.mark.parametrize("model_config, arrays", [
    (ml_collections.ConfigDict({"name": "mlp", "hidden_sizes": (32, 16), "activation": "relu",
                                "dropout": 0.0, "residual": False}),
     {"image": np.zeros((4, 8, 8, 1), np.uint8), "label": np.zeros(4, np.int32)}),
    (ml_collections.ConfigDict({"name": "cnn", "conv_features": (8, 16), "kernel_size": 3,
                                "dense_sizes": (32,), "activation": "relu", "dropout": 0.0}),
     {"image": np.zeros((4, 8, 8, 1), np.uint8), "label": np.zeros(4, np.int32)}),
    (tiny_transformer(),
     {"tokens": np.ones((4, 16), np.int32), "label": np.zeros(4, np.int32),
      "token_mask": np.arange(16)[None] < np.array([[8], [16], [3], [1]])}),
    (ml_collections.ConfigDict({"name": "lm", "max_len": 16, "hidden": 16, "depth": 2, "heads": 2,
                                "mlp_dim": 32, "dropout": 0.1, "dtype": "float32",
                                "param_dtype": "float32", "remat": "none"}),
     {"tokens": np.ones((4, 16), np.int32), "label": np.zeros(4, np.int32),
      "token_mask": np.arange(16)[None] < np.array([[8], [16], [3], [2]])}),
], ids=["mlp", "cnn", "transformer", "lm"])
def test_torch_twin_has_our_parameter_count_and_trains(model_config, arrays):
    pytest.importorskip("torch")
    from benchmarks import torch_twins

    ours = models.build(model_config, num_classes=5, vocab_size=50)
    one_row = {name: values[:1] for name, values in arrays.items()}
    state = jax.eval_shape(lambda: init_state(ours, optax.adam(1e-3), one_row, seed=0))
    twin = torch_twins.build(model_config, arrays, num_classes=5, vocab_size=50)
    assert sum(p.numel() for p in twin.parameters()) == sum(x.size for x in jax.tree.leaves(state.params))
    steps = torch_twins.TrainSteps(twin, ml_collections.ConfigDict(
        {"name": "adam", "lr": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "clip_norm": 0.0}), arrays)
    assert np.isfinite(steps.step().item())
