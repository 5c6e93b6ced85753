"""The registry of export formats: every format's writer and loader round-trip a small model
(no training run: a hand-made linear classifier), the programs' choices and help come from the
registry, and a new format is one entry with its writer and loader."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import linen as nn

from research.errors import UserError
from research.export import formats, loaders, writers
from research.export.model import Model
from research.export.signature import read_signature
from tests.conftest import ROOT

WEIGHTS = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
BIAS = np.float32([0.1, -0.2, 0.3])
LAYER = nn.Dense(3)


def linear_model(quantized: str = "") -> Model:
    """softmax(features @ WEIGHTS + BIAS), described by a signature like an exported run's."""
    signature = {"model": "linear", "kind": "features", "quantized": quantized or None,
                 "inputs": [{"name": "features", "dtype": "float32", "shape": [None, 4]}],
                 "output": {"name": "probabilities", "dtype": "float32", "shape": [None, 3]}}

    def probabilities(batch):  # A Flax layer, as jax2onnx meets in a run's model.
        return jax.nn.softmax(LAYER.apply({"params": {"kernel": WEIGHTS, "bias": BIAS}}, batch["features"]))

    calibration = [{"features": rows} for rows in np.split(batch_of(32), 4)]
    return Model(signature, jax.jit(probabilities), exp=None, traceable=probabilities,
                 float_traceable=probabilities if quantized else None,
                 calibration=calibration if quantized else [])


def batch_of(rows: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(rows, 4)).astype(np.float32)


def write(model: Model, directory, written: formats.Format, quantized: str = "") -> dict:
    directory.mkdir(exist_ok=True)
    (directory / "signature.json").write_text(json.dumps(model.signature))
    return written.write(model, str(directory / written.file), quantized)


def test_the_int8_modes_are_the_quantizer_s_and_every_entry_names_real_functions():
    from research.compress import quantize

    assert tuple(formats.INT8_MODES) == quantize.PTQ_MODES
    assert len(set(formats.names())) == len(formats.FORMATS)
    for f in formats.FORMATS:
        assert callable(getattr(writers, f.writer)) and callable(getattr(loaders, f.loader))
        assert not f.int8_writer or callable(getattr(writers, f.int8_writer))
        assert set(f.int8_modes) <= set(formats.INT8_MODES)


@pytest.mark.parametrize("name", formats.names())
def test_each_format_writes_what_its_loader_runs(name, tmp_path):
    model, batch = linear_model(), {"features": batch_of(5)}
    written = formats.get(name)
    assert write(model, tmp_path / "export", written) == {}
    signature, run = written.load(str(tmp_path / "export"))
    assert signature == model.signature
    for rows in (1, 5):  # Any batch size.
        part = {"features": batch["features"][:rows]}
        np.testing.assert_allclose(run(part), model.probabilities(part), rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", formats.get("onnx").int8_modes)
def test_int8_onnx_is_onnxruntime_s_quantization_of_the_float_model(mode, tmp_path):
    model, batch = linear_model(mode), {"features": batch_of(64)}
    onnx_format = formats.get("onnx")
    assert not onnx_format.same_model(mode) and formats.get("stablehlo").same_model(mode)
    made = write(model, tmp_path / "export", onnx_format, mode)
    assert made == {"quantizer": f"onnxruntime {'dynamic' if mode == 'w8a8' else 'static'} int8",
                    "calibration_batches": 4 if mode == "w8a8_static" else 0}
    _, run = onnx_format.load(str(tmp_path / "export"))
    agreement = np.mean(run(batch).argmax(-1) == model.probabilities(batch).argmax(-1))
    assert agreement >= 0.9


def test_a_missing_file_names_the_program_that_writes_it(tmp_path):
    (tmp_path / "signature.json").write_text("{}")
    with pytest.raises(UserError, match="has no model.onnx; write it with experiments.export --format=onnx"):
        loaders.load_onnx(str(tmp_path))
    with pytest.raises(UserError, match="has no signature.json; write it with experiments.export"):
        read_signature(str(tmp_path / "nothing"))


def test_int8_modes_are_checked_against_the_formats_that_hold_them():
    formats.check_quantized("")
    formats.check_quantized("w8", [formats.get("stablehlo")])
    with pytest.raises(UserError, match=r"unknown quantization mode 'w4'; choose one of \['w8', 'w8a8'"):
        formats.check_quantized("w4")
    with pytest.raises(UserError, match=r"an int8 ONNX export is of mode w8a8 or w8a8_static \(onnxruntime's "
                                        r"quantization\); --quantized=w8 exports as --format=stablehlo only"):
        formats.check_quantized("w8", [formats.get("stablehlo"), formats.get("onnx")])


def test_the_programs_help_and_choices_come_from_the_registry():
    assert formats.either(["a"]) == "a" and formats.either(["a", "b", "c"]) == "a, b or c"
    assert formats.int8_limits() == " (w8: StableHLO only)"
    code = ("import sys, experiments.export as e; from absl import flags; "
            "print(flags.FLAGS['format'].help); print(flags.FLAGS['format'].default); "
            "print(sorted(m for m in ('jax', 'qwix', 'onnx') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    # Its flags are built without importing JAX, Qwix or ONNX.
    assert done.stdout.splitlines() == ["Formats to write: stablehlo, onnx.", "['stablehlo', 'onnx']", "[]"]
    from research.serve import predict

    assert predict.BACKENDS == ("auto", "jax", "stablehlo", "onnx")


def test_a_new_format_is_an_entry_with_its_writer_and_loader(tmp_path, monkeypatch):
    def write_mirror(model, path):  # StableHLO under another name: enough to show the route.
        writers.write_stablehlo(model, path)
        return {"mirrored": True}

    def load_mirror(directory):
        with open(f"{directory}/model.mirror", "rb") as f:
            call = jax.export.deserialize(bytearray(f.read())).call
        return read_signature(directory), lambda batch: np.asarray(call(batch))

    monkeypatch.setattr(writers, "write_mirror", write_mirror, raising=False)
    monkeypatch.setattr(loaders, "load_mirror", load_mirror, raising=False)
    mirror = formats.Format("mirror", "Mirror", ("model.mirror",), writer="write_mirror",
                            loader="load_mirror")
    monkeypatch.setattr(formats, "FORMATS", (*formats.FORMATS, mirror))

    assert formats.names() == ["stablehlo", "onnx", "mirror"] and formats.get("mirror") is mirror
    assert formats.int8_limits() == (" (w8: StableHLO only; w8a8: StableHLO and ONNX only; "
                                     "w8a8_static: StableHLO and ONNX only)")
    with pytest.raises(UserError, match="Mirror holds no int8 model; --quantized=w8a8 exports as "
                                        "--format=stablehlo,onnx only"):
        formats.check_quantized("w8a8", [mirror])
    model, batch = linear_model(), {"features": batch_of(3)}
    assert write(model, tmp_path / "export", mirror) == {"mirrored": True}
    _, run = mirror.load(str(tmp_path / "export"))
    np.testing.assert_allclose(run(batch), model.probabilities(batch), rtol=0, atol=1e-6)
