"""A classifier run as files that run without this codebase: `<workdir>/export/`.

  model.stablehlo   `jax.export`'s serialized module: the model with its weights, from the
                    dataset's raw arrays (uint8 images, token ids and their mask, ...) to class
                    probabilities, for any batch size (a symbolic batch dimension)
  model.onnx        the same function as an ONNX model (jax2onnx), for onnxruntime and others
                    (weights over 1 MB in model.onnx.data beside it)
  signature.json    its inputs (name, dtype, shape; null is the batch), output, the
                    preprocessing it expects, the class names, the checkpoint it came from,
                    and the largest difference to the JAX model measured when it was written
  tokenizer.model   text runs: the SentencePiece model that makes the token ids

Export checks itself: each exported model is run on a batch of the test split (the ONNX one
by onnxruntime), and the export fails (writing nothing) if its probabilities differ from the
JAX model's by more than `TOLERANCE`. Language models are not exported: `experiments.generate`
samples from them.

An int8 model (`quantized=` a PTQ mode of research/compress/quantize.py) exports to
`<workdir>/export_<mode>/`. StableHLO holds Qwix's int8 model: with int8 activations its
weights stay int8 in the module (w8a8: about a quarter of the float module's bytes); with int8
weights only (w8) the converter folds their dequantization into float constants, so the module
is float-sized. ONNX holds onnxruntime's own int8 quantization of the float ONNX model
(jax2onnx cannot read Qwix's int8 weights), the same scheme as the mode: int8 per-channel
weights of every convolution and matmul, activations quantized per call (w8a8: ConvInteger,
MatMulInteger) or with scales calibrated on the same training batches as Qwix's (w8a8_static:
QLinearConv, QGemm). Two quantizers round differently, so an int8 ONNX model is checked by the
share of test rows whose top class it gives as the JAX int8 model does (`INT8_AGREEMENT`).
"""

import contextlib
import dataclasses
import io
import json
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

from research import tasks
from research import workdir as workdir_lib
from research.data import text
from research.errors import UserError
from research.models import model_inputs
from research.run import experiment, restore

TOLERANCE = 1e-5  # Largest absolute difference in a probability, float32.
INT8_AGREEMENT = 0.95  # Least share of check rows an int8 ONNX model classifies as the JAX int8 one.
ONNX_INT8_MODES = ("w8a8", "w8a8_static")  # onnxruntime's dynamic and static quantization.
CHECK_ROWS = 256  # Test rows the export is checked on.
LATENCY_BATCH_SIZES = (1, 256)
# What each kind of input is, for whoever prepares it.
PREPROCESSING = {
    "image": "uint8 pixels [B, H, W, C] as stored (0-255); the module divides by 255",
    "signal": "float32 signals [B, L, C] as the dataset stores them",
    "features": "float32 features [B, D] as the dataset stores them",
    "tokens": "int32 SentencePiece ids [B, L] of tokenizer.model: BOS then the text's first L-1 "
              "pieces, padded with 0; token_mask [B, L] is True on real tokens",
}
INPUT_KEYS = {"image": ("image",), "signal": ("signal",), "features": ("features",),
              "tokens": ("tokens", "token_mask")}


@dataclasses.dataclass
class Predictor:
    """A run's checkpoint ready for inference: `probabilities(batch)` on host arrays."""

    signature: dict
    probabilities_fn: object  # batch dict -> [B, K] probabilities (a jitted JAX function)
    exp: experiment.Experiment
    traceable: object = None  # The same function unjitted, for converters that trace it.
    float_traceable: object = None  # An int8 predictor's float function (the ONNX route's input).
    calibration: list = dataclasses.field(default_factory=list)  # An int8 predictor's batches.

    def probabilities(self, batch: dict) -> np.ndarray:
        return np.asarray(self.probabilities_fn({k: batch[k] for k in input_names(self.signature)}))


def input_names(signature: dict) -> list[str]:
    return [spec["name"] for spec in signature["inputs"]]


def load(workdir: str, checkpoint_name: str = "best", quantized: str = "") -> Predictor:
    """The run's model at `checkpoint_name` (best, latest or a step), on one device; with
    `quantized` (a research/compress/quantize.py PTQ mode), its int8 model."""
    config = workdir_lib.load_config(workdir)
    if tasks.for_model(config.model.name, 0, config.task).predicts_tokens:
        raise UserError(f"{workdir} trained a language model; export and predict serve classifiers "
                        "(sample from it with experiments.generate)")
    run = restore.restore(workdir, checkpoint_name, one_device=True)
    config, exp, step, variables = run.config, run.experiment, run.step, run.variables
    params = jax.device_get(variables["params"])
    binary = isinstance(exp.task, tasks.BinaryClassification)

    def probabilities_of(model, variables):
        def probabilities(batch):
            x, inputs = model_inputs(batch)
            logits = model.apply(variables, x, **inputs, train=False)
            if binary:  # One logit: P(class 1); both classes' probabilities are returned.
                p1 = jax.nn.sigmoid(logits[:, 0])
                return jnp.stack([1.0 - p1, p1], axis=-1)
            return jax.nn.softmax(logits, axis=-1)
        return probabilities

    # The float variables are copied to the host only for the float model's own export; an
    # int8 export traces the float model (its ONNX route) from the device arrays.
    float_probabilities = probabilities_of(exp.model, variables if quantized
                                           else jax.device_get(variables))
    probabilities, calibration = float_probabilities, []
    if quantized:
        from research.compress import ptq as quantized_lib  # Qwix, only for int8 exports.

        calibration = quantized_lib.calibration_data(config, exp)
        probabilities = probabilities_of(*quantized_lib.quantized_model(exp, variables, quantized,
                                                                        calibration))

    kind = next(k for k, names in INPUT_KEYS.items() if names[0] in exp.eval_data.arrays)
    arrays = exp.eval_data.arrays
    signature = {
        "workdir": os.path.abspath(workdir), "checkpoint": checkpoint_name, "step": step,
        "model": config.model.name, "task": "binary" if binary else "classification",
        "kind": kind,
        "inputs": [{"name": name, "dtype": np.dtype(arrays[name].dtype).name,
                    "shape": [None, *np.shape(arrays[name][0])]} for name in INPUT_KEYS[kind]],
        "output": {"name": "probabilities", "dtype": "float32",
                   "shape": [None, len(exp.eval_data.class_names)]},
        "preprocessing": PREPROCESSING[kind],
        "class_names": list(exp.eval_data.class_names),
        "quantized": quantized or None,
        # Pruned runs' zeros are stored like any weight; `nonzero` counts what pruning left.
        "parameters": {"total": int(sum(np.size(p) for p in jax.tree.leaves(params))),
                       "nonzero": int(sum(np.count_nonzero(p) for p in jax.tree.leaves(params)))},
    }
    if kind == "tokens":
        signature.update(tokenizer="tokenizer.model", max_len=config.data.max_len)
    return Predictor(signature, jax.jit(probabilities), exp, probabilities,
                     float_traceable=float_probabilities if quantized else None, calibration=calibration)


def test_batch(predictor: Predictor, rows: int = CHECK_ROWS) -> dict:
    """The first `rows` rows of the run's evaluation split, as the model's inputs."""
    arrays = predictor.exp.eval_data.arrays
    count = min(rows, len(arrays["label"]))
    return {name: np.asarray(arrays[name][np.arange(count)]) for name in input_names(predictor.signature)}


def export_stablehlo(predictor: Predictor) -> bytes:
    """The serialized module, its batch dimension symbolic."""
    (batch,) = jax.export.symbolic_shape("batch")
    specs = {spec["name"]: jax.ShapeDtypeStruct((batch, *spec["shape"][1:]), np.dtype(spec["dtype"]))
             for spec in predictor.signature["inputs"]}
    return bytes(jax.export.export(predictor.probabilities_fn)(specs).serialize())


def export_onnx(predictor: Predictor, path: str) -> None:
    """An ONNX model of the same function (jax2onnx), its batch dimension symbolic; weights over
    1 MB go to `<path>.data` beside it."""
    try:
        from jax2onnx import to_onnx  # Only ONNX export needs it (the `export` extra).
    except ImportError as e:
        raise UserError("--format=onnx needs jax2onnx and onnxruntime: scripts/setup.sh installs them "
                        "from requirements.lock, or `pip install 'research[export]'`") from e
    names = input_names(predictor.signature)
    specs = [jax.ShapeDtypeStruct(("batch", *spec["shape"][1:]), np.dtype(spec["dtype"]))
             for spec in predictor.signature["inputs"]]
    try:
        # jax2onnx 0.13's Flax Conv converter prints a debug line to stdout for every conv; the
        # programs' stdout is their report, so the converter's goes nowhere.
        with contextlib.redirect_stdout(io.StringIO()):
            to_onnx(lambda *arrays: predictor.traceable(dict(zip(names, arrays, strict=True))),
                    inputs=specs, input_names=names, output_names=["probabilities"],
                    model_name=predictor.signature["model"], return_mode="file", output_path=path)
    except Exception as e:  # noqa: BLE001  (the converter raises many kinds; all mean "cannot")
        first_line = str(e).splitlines()[0] if str(e) else ""
        raise UserError(f"jax2onnx cannot convert the {predictor.signature['model']!r} model "
                        f"({type(e).__name__}: {first_line}); --format=stablehlo exports it") from e


def export_int8_onnx(predictor: Predictor, path: str, mode: str) -> dict:
    """onnxruntime's int8 quantization (`mode`: w8a8 dynamic, w8a8_static calibrated on the
    predictor's calibration batches) of the float model's ONNX export; returns how it was made.

    Weights are int8 with 7 bits used (`reduce_range`): onnxruntime's uint8 x int8 kernels on
    x86 CPUs without VNNI (AVX2, AVX-512F) multiply with VPMADDUBSW, which saturates its int16
    sums with full-range weights. Measured on the Fashion-MNIST BN CNN (float 92.02%): static
    int8 92.05% with the reduced range, 91.42% without (docs/tables/compression.md)."""
    import tempfile

    from onnxruntime import quantization as ort_quantization

    names = input_names(predictor.signature)
    scheme = {"per_channel": True, "reduce_range": True, "weight_type": ort_quantization.QuantType.QInt8,
              "op_types_to_quantize": ["Conv", "MatMul", "Gemm"]}
    with tempfile.TemporaryDirectory() as scratch:
        float_path, prepared = os.path.join(scratch, "float.onnx"), os.path.join(scratch, "prepared.onnx")
        export_onnx(dataclasses.replace(predictor, traceable=predictor.float_traceable), float_path)
        ort_quantization.shape_inference.quant_pre_process(float_path, prepared)  # Shapes, folding.
        if mode == "w8a8":
            ort_quantization.quantize_dynamic(prepared, path, **scheme)
        else:
            class Calibration(ort_quantization.CalibrationDataReader):
                def __init__(self, batches):
                    self.batches = iter(batches)

                def get_next(self):  # The next batch's inputs by name; None after the last.
                    return next(self.batches, None)

            batches = [{k: batch[k] for k in names} for batch in predictor.calibration]
            ort_quantization.quantize_static(
                prepared, path, Calibration(batches), quant_format=ort_quantization.QuantFormat.QOperator,
                activation_type=ort_quantization.QuantType.QUInt8, **scheme)
    return {"quantizer": f"onnxruntime {'dynamic' if mode == 'w8a8' else 'static'} int8",
            "calibration_batches": len(predictor.calibration) if mode == "w8a8_static" else 0}


def load_onnx(directory: str):
    """(signature, batch dict -> probabilities) of an export directory's ONNX model, run by
    onnxruntime on the CPU."""
    import onnxruntime

    signature = read_signature(directory)
    path = os.path.join(directory, "model.onnx")
    if not os.path.exists(path):
        raise UserError(f"{directory} has no model.onnx; write it with experiments.export --format=onnx")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return signature, lambda batch: session.run(None, {k: batch[k] for k in input_names(signature)})[0]


def load_stablehlo(directory: str):
    """(signature, batch dict -> probabilities) of an export directory."""
    signature = read_signature(directory)
    if not os.path.exists(os.path.join(directory, "model.stablehlo")):
        raise UserError(f"{directory} has no model.stablehlo; write it with experiments.export "
                        "--format=stablehlo")
    with open(os.path.join(directory, "model.stablehlo"), "rb") as f:
        exported = jax.export.deserialize(bytearray(f.read()))
    call = jax.jit(exported.call)  # Compiled once a batch size.
    return signature, lambda batch: np.asarray(call({k: batch[k] for k in input_names(signature)}))


def read_signature(directory: str) -> dict:
    path = os.path.join(directory, "signature.json")
    if not os.path.exists(path):
        raise UserError(f"{directory} has no signature.json; write it with experiments.export")
    with open(path) as f:
        return json.load(f)


FORMATS = {"stablehlo": ("model.stablehlo", load_stablehlo), "onnx": ("model.onnx", load_onnx)}


def export_dir(workdir: str, quantized: str = "") -> str:
    """Where a run's export is written: `export/`, or `export_<mode>/` for an int8 one."""
    return os.path.join(workdir, f"export_{quantized}" if quantized else "export")


def latency(run, batch: dict, batch_sizes=LATENCY_BATCH_SIZES, seconds: float = 1.0) -> dict:
    """Seconds a call of `run` takes on the first rows of `batch` (repeated to fill a bigger
    batch), by batch size: the median of calls made for about `seconds` after two warm-ups."""
    measured = {}
    rows = len(next(iter(batch.values())))
    for size in batch_sizes:
        sized = {k: np.resize(v, (size, *v.shape[1:])) if size > rows else v[:size] for k, v in batch.items()}
        for _ in range(2):
            run(sized)
        times, start = [], time.perf_counter()
        while len(times) < 5 or time.perf_counter() - start < seconds:
            begin = time.perf_counter()
            run(sized)
            times.append(time.perf_counter() - begin)
        measured[str(size)] = float(np.median(times))
    return measured


def test_accuracy(run, predictor: Predictor, rows: int = 1024) -> float:
    """The share of the run's evaluation split whose label is the top class of `run`'s
    probabilities (an exported model, `rows` rows a call)."""
    arrays, names = predictor.exp.eval_data.arrays, input_names(predictor.signature)
    labels = np.asarray(arrays["label"][np.arange(len(arrays["label"]))])
    correct = 0
    for start in range(0, len(labels), rows):
        index = np.arange(start, min(start + rows, len(labels)))
        predicted = np.asarray(run({k: np.asarray(arrays[k][index]) for k in names})).argmax(-1)
        correct += int(np.sum(predicted == labels[index]))
    return correct / len(labels)


def export_workdir(workdir: str, *, checkpoint_name: str = "best", formats=("stablehlo", "onnx"),
                   quantized: str = "", measure_latency: bool = False, evaluate: bool = False) -> dict:
    """Writes `export_dir(workdir, quantized)` in each of `formats` (replacing an earlier export
    only once every new file has passed its check); returns the signature. `measure_latency`
    adds each format's seconds a call at batch sizes 1 and 256 (its own runtime, this machine);
    `evaluate` each exported model's accuracy on the whole evaluation split."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise UserError(f"unknown export format(s) {unknown}; choose from {sorted(FORMATS)}")
    if quantized and "onnx" in formats and quantized not in ONNX_INT8_MODES:
        raise UserError(f"an int8 ONNX export is of mode {' or '.join(ONNX_INT8_MODES)} (onnxruntime's "
                        f"quantization); --quantized={quantized} exports as --format=stablehlo only")
    predictor = load(workdir, checkpoint_name, quantized)
    batch = test_batch(predictor)
    expected = predictor.probabilities(batch)
    target = export_dir(workdir, quantized)
    staging = target + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    signature = dict(predictor.signature, formats={})
    workdir_lib.write_json(os.path.join(staging, "signature.json"), signature)  # Read by the checks.
    if "tokenizer" in signature:
        shutil.copyfile(text.run_tokenizer_file(workdir), os.path.join(staging, "tokenizer.model"))
    try:
        for name in formats:
            file, load_format = FORMATS[name]
            path = os.path.join(staging, file)
            made = {}
            if name == "stablehlo":
                with open(path, "wb") as f:
                    f.write(export_stablehlo(predictor))
            elif quantized:
                made = export_int8_onnx(predictor, path, quantized)
            else:
                export_onnx(predictor, path)
            _, run_exported = load_format(staging)
            probabilities = np.asarray(run_exported(batch))
            difference = float(np.abs(probabilities - expected).max())
            if made:  # Another quantizer: the same classes, not the same probabilities.
                made["agreement"] = float(np.mean(probabilities.argmax(-1) == expected.argmax(-1)))
                if not made["agreement"] >= INT8_AGREEMENT:
                    raise UserError(f"the int8 {name} model gives the JAX int8 model's class on "
                                    f"{made['agreement']:.1%} of {len(expected)} test rows (less than "
                                    f"{INT8_AGREEMENT:.0%}); nothing was written")
            elif not difference <= TOLERANCE:
                raise UserError(f"the exported {name} model's probabilities differ from the JAX model's by "
                                f"{difference:.3g} (more than {TOLERANCE}) on {len(expected)} test rows; "
                                "nothing was written")
            files = sorted(f for f in os.listdir(staging) if f.startswith(file))  # With ONNX's .data.
            signature["formats"][name] = {
                "file": file, "bytes": sum(os.path.getsize(os.path.join(staging, f)) for f in files),
                "checked_rows": len(expected), "max_abs_diff": difference, **made}
            if measure_latency:
                signature["formats"][name]["latency_s"] = latency(run_exported, batch)
            if evaluate:
                signature["formats"][name]["test_accuracy"] = test_accuracy(run_exported, predictor)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    signature["versions"] = {"jax": jax.__version__, **_converter_versions(formats)}
    workdir_lib.write_json(os.path.join(staging, "signature.json"), signature)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return signature


def _converter_versions(formats) -> dict:
    if "onnx" not in formats:
        return {}
    import importlib.metadata

    return {name: importlib.metadata.version(name) for name in ("jax2onnx", "onnx", "onnxruntime")}
