"""int8 quantization with Qwix: post-training modes evaluated beside the float model (int8
weights, deterministic, close to float), and quantization-aware training that resumes exactly
and whose int8 conversion is what it trained."""

import json
import os

import numpy as np
import pytest

from research import export
from research.errors import UserError
from research.serve import predict
from research.train import loop, quantized
from tests.conftest import StopAfterCalls, run_program
from tests.train.conftest import assert_same_run


@pytest.fixture
def cnn_run(digits_cnn_run):
    """tests/train/conftest.py's digits CNN (convolutions and Dense layers)."""
    return digits_cnn_run


def test_post_training_int8_is_close_to_float_and_deterministic(cnn_run):
    """w8a8_static, the mode with calibration (w8 runs in the program test below, with the speed
    measured and the JSON written; w8a8 in the QAT test)."""
    results = quantized.evaluate_quantized(cnn_run, "w8a8_static", calibration_batches=2)
    floats, ints = results["float"], results["quantized"]
    assert abs(ints["eval/test/accuracy"] - floats["eval/test/accuracy"]) < 0.03
    assert ints["weight_bytes"] < 0.5 * floats["weight_bytes"]  # int8 kernels, float scales.
    # Calibrated again, the same model: evaluate --quantized gives the same numbers.
    again = quantized.evaluate_quantized(cnn_run, "w8a8_static", calibration_batches=2)
    assert again["quantized"]["eval/test/loss"] == ints["eval/test/loss"]
    # Its ONNX export is onnxruntime's static int8 model (int8 convolutions and matmuls), which
    # the export checks against the JAX int8 model's classes.
    signature = export.export_workdir(cnn_run, formats=("onnx",), quantized="w8a8_static", evaluate=True)
    written = signature["formats"]["onnx"]
    assert written["quantizer"] == "onnxruntime static int8" and written["calibration_batches"] == 8
    assert written["agreement"] >= export.INT8_AGREEMENT
    assert abs(written["test_accuracy"] - ints["eval/test/accuracy"]) < 0.03
    assert onnx_ops(f"{cnn_run}/export_w8a8_static/model.onnx") >= {"QLinearConv", "QGemm"}


def onnx_ops(path: str) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(path).graph.node}


def test_the_programs(cnn_run):
    done = run_program("experiments.quantize", f"--workdir={cnn_run}", "--weights_activations=w8")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "quantized: eval/test/loss=" in done.stdout and "examples/s" in done.stdout
    with open(f"{cnn_run}/quantized/w8.json") as f:
        written = json.load(f)
    floats, ints = written["float"], written["quantized"]
    assert abs(ints["eval/test/accuracy"] - floats["eval/test/accuracy"]) < 0.03
    assert ints["weight_bytes"] < 0.75 * floats["weight_bytes"]  # The convolutions' kernels stay float.
    done = run_program("experiments.evaluate", f"--workdir={cnn_run}", "--quantized=w4")
    assert done.returncode == 1 and "unknown quantization mode 'w4'" in done.stderr


def test_quantization_aware_training_resumes_exactly_and_converts_to_int8(digits_config, tmp_path,
                                                                          monkeypatch):
    digits_config.quant.mode = "qat"
    digits_config.train.update(steps=30, log_every=10, eval_every=30, checkpoint_every=10)
    whole = str(tmp_path / "whole")
    results = loop.train_and_evaluate(digits_config, whole)
    losses = [row["train/loss"] for row in map(json.loads, open(f"{whole}/metrics.jsonl"))
              if "train/loss" in row]
    assert losses[-1] < losses[0]
    resumed = str(tmp_path / "resumed")
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", lambda **_: StopAfterCalls(14))
        assert loop.train_and_evaluate(digits_config, resumed)["status"] == "stopped"
    loop.train_and_evaluate(digits_config, resumed)
    assert_same_run(whole, resumed)
    # The QAT run's forward pass is the int8 model's: converting it changes (almost) nothing.
    converted = quantized.evaluate_quantized(whole, "w8a8", checkpoint_name="latest")
    np.testing.assert_allclose(converted["quantized"]["eval/test/loss"], results["eval/test/loss"], rtol=1e-4)
    # The int8 model exports to StableHLO (checked against it within 1e-5 by the export),
    # with its int8 kernels in the module: smaller than the float one (by less than 4x on this
    # small MLP, whose module's code weighs as much as its kernels), and to ONNX as
    # onnxruntime's dynamic int8 model; int8 weights alone (w8) have no ONNX route.
    int8 = export.export_workdir(whole, checkpoint_name="latest", formats=("stablehlo", "onnx"),
                                 quantized="w8a8", measure_latency=True, latency_seconds=0.05)
    floats = export.export_workdir(whole, checkpoint_name="latest", formats=("stablehlo",))
    assert int8["quantized"] == "w8a8" and int8["formats"]["stablehlo"]["max_abs_diff"] <= 1e-5
    assert int8["formats"]["stablehlo"]["bytes"] < 0.7 * floats["formats"]["stablehlo"]["bytes"]
    assert set(int8["formats"]["stablehlo"]["latency_s"]) == set(int8["formats"]["onnx"]["latency_s"]) == {
        "1", "256"}
    assert int8["formats"]["onnx"]["agreement"] >= export.INT8_AGREEMENT
    assert "MatMulInteger" in onnx_ops(f"{whole}/export_w8a8/model.onnx")
    assert os.path.exists(f"{whole}/export_w8a8/model.stablehlo") and os.path.exists(f"{whole}/export")
    # experiments.predict --quantized runs the int8 model: Qwix's from the checkpoint or its
    # StableHLO export (the same probabilities), or onnxruntime's int8 ONNX model.
    loaded = export.load(whole, "latest")
    (name,) = export.input_names(loaded.signature)
    rows = export.test_batch(loaded, rows=4)[name]
    paths = []
    for i, row in enumerate(rows):
        np.save(tmp_path / f"row{i}.npy", row)
        paths.append(str(tmp_path / f"row{i}.npy"))
    answers = {backend: predict.predict(whole, paths, backend=backend, checkpoint_name="latest",
                                        quantized="w8a8") for backend in ("jax", "stablehlo", "onnx")}
    np.testing.assert_allclose([a["probabilities"] for a in answers["stablehlo"]],
                               [a["probabilities"] for a in answers["jax"]], atol=1e-5)
    assert all(abs(sum(a["probabilities"]) - 1) < 1e-4 for a in answers["onnx"])
    with pytest.raises(UserError, match="exports as --format=stablehlo only"):
        export.export_workdir(whole, formats=("onnx",), quantized="w8")
    digits_config.quant.bits = 4
    with pytest.raises(UserError, match="quant.bits=4"):
        loop.train_and_evaluate(digits_config, str(tmp_path / "four"))
