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
`<workdir>/export_<mode>/`. StableHLO holds Qwix's int8 model; ONNX holds onnxruntime's own
int8 quantization of the float ONNX model, the same scheme as the mode (writers.py says how).
Two quantizers round differently, so an int8 ONNX model is checked by the share of test rows
whose top class it gives as the JAX int8 model does (`INT8_AGREEMENT`).

  formats.py    the registry of formats: the one place a format is named
  model.py      the run's model in this process, which the writers export (its int8 model from
                research/compress/ptq.py)
  writers.py    a model to a format's files        loaders.py   a format's files to a function
  exporting.py  export_workdir: write, check, replace   measure.py  latency and test accuracy
  signature.py  signature.json's inputs, and reading it
"""

import importlib

# The package's functions by the module that holds them. Programs read `formats` to build their
# flags' help before they parse their flags; a name here imports JAX and the run's checkpoint
# code only when it is first used.
_API = {
    "export_workdir": "exporting", "TOLERANCE": "exporting", "INT8_AGREEMENT": "exporting",
    "FORMATS": "formats", "export_dir": "formats",
    "Model": "model", "load": "model", "test_batch": "model",
    "load_stablehlo": "loaders", "load_onnx": "loaders",
    "latency": "measure", "test_accuracy": "measure",
    "input_names": "signature", "read_signature": "signature",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
