"""The writers of research/export/formats.py's formats: each writes a model (model.Model) to a
path and returns what signature.json says of how it was made."""

import contextlib
import dataclasses
import io
import os
import tempfile

import jax
import numpy as np

from research.errors import UserError
from research.export.signature import input_names


def write_stablehlo(model, path: str) -> dict:
    """`jax.export`'s serialized module of the model's jitted function (its weights included),
    its batch dimension symbolic. Qwix's int8 model keeps int8 weights in the module when its
    activations are int8 too (w8a8: about a quarter of the float module's bytes); with int8
    weights only (w8) the converter folds their dequantization into float constants."""
    (batch,) = jax.export.symbolic_shape("batch")
    specs = {spec["name"]: jax.ShapeDtypeStruct((batch, *spec["shape"][1:]), np.dtype(spec["dtype"]))
             for spec in model.signature["inputs"]}
    with open(path, "wb") as f:
        f.write(bytes(jax.export.export(model.probabilities_fn)(specs).serialize()))
    return {}


def write_onnx(model, path: str) -> dict:
    """An ONNX model of the same function (jax2onnx), its batch dimension symbolic; weights over
    1 MB go to `<path>.data` beside it."""
    try:
        from jax2onnx import to_onnx  # Only ONNX export needs it (the `export` extra).
    except ImportError as e:
        raise UserError("--format=onnx needs jax2onnx and onnxruntime: scripts/setup.sh installs them "
                        "from requirements.lock, or `pip install 'research[export]'`") from e
    names = input_names(model.signature)
    specs = [jax.ShapeDtypeStruct(("batch", *spec["shape"][1:]), np.dtype(spec["dtype"]))
             for spec in model.signature["inputs"]]
    try:
        # jax2onnx 0.13's Flax Conv converter prints a debug line to stdout for every conv; the
        # programs' stdout is their report, so the converter's goes nowhere.
        with contextlib.redirect_stdout(io.StringIO()):
            to_onnx(lambda *arrays: model.traceable(dict(zip(names, arrays, strict=True))),
                    inputs=specs, input_names=names, output_names=["probabilities"],
                    model_name=model.signature["model"], return_mode="file", output_path=path)
    except Exception as e:  # noqa: BLE001  (the converter raises many kinds; all mean "cannot")
        first_line = str(e).splitlines()[0] if str(e) else ""
        raise UserError(f"jax2onnx cannot convert the {model.signature['model']!r} model "
                        f"({type(e).__name__}: {first_line}); --format=stablehlo exports it") from e
    return {}


def write_int8_onnx(model, path: str) -> dict:
    """onnxruntime's int8 quantization of the float model's ONNX export (jax2onnx cannot read
    Qwix's int8 weights), the same scheme as the model's mode: int8 per-channel weights of every
    convolution and matmul, activations quantized per call (w8a8: ConvInteger, MatMulInteger)
    or with scales calibrated on the model's calibration batches, Qwix's (w8a8_static:
    QLinearConv, QGemm).

    Weights are int8 with 7 bits used (`reduce_range`): onnxruntime's uint8 x int8 kernels on
    x86 CPUs without VNNI (AVX2, AVX-512F) multiply with VPMADDUBSW, which saturates its int16
    sums with full-range weights. Measured on the Fashion-MNIST BN CNN (float 92.02%): static
    int8 92.05% with the reduced range, 91.42% without (docs/tables/compression.md)."""
    from onnxruntime import quantization as ort_quantization

    mode = model.signature["quantized"]
    names = input_names(model.signature)
    scheme = {"per_channel": True, "reduce_range": True, "weight_type": ort_quantization.QuantType.QInt8,
              "op_types_to_quantize": ["Conv", "MatMul", "Gemm"]}
    with tempfile.TemporaryDirectory() as scratch:
        float_path, prepared = os.path.join(scratch, "float.onnx"), os.path.join(scratch, "prepared.onnx")
        write_onnx(dataclasses.replace(model, traceable=model.float_traceable), float_path)
        ort_quantization.shape_inference.quant_pre_process(float_path, prepared)  # Shapes, folding.
        if mode == "w8a8":
            ort_quantization.quantize_dynamic(prepared, path, **scheme)
        else:
            class Calibration(ort_quantization.CalibrationDataReader):
                def __init__(self, batches):
                    self.batches = iter(batches)

                def get_next(self):  # The next batch's inputs by name; None after the last.
                    return next(self.batches, None)

            batches = [{k: batch[k] for k in names} for batch in model.calibration]
            ort_quantization.quantize_static(
                prepared, path, Calibration(batches), quant_format=ort_quantization.QuantFormat.QOperator,
                activation_type=ort_quantization.QuantType.QUInt8, **scheme)
    return {"quantizer": f"onnxruntime {'dynamic' if mode == 'w8a8' else 'static'} int8",
            "calibration_batches": len(model.calibration) if mode == "w8a8_static" else 0}
