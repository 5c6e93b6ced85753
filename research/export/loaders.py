"""The loaders of research/export/formats.py's formats: each reads an export directory, without
the dataset or this codebase's models, into (signature, batch dict -> probabilities)."""

import contextlib
import os

import jax
import numpy as np

from research.errors import UserError
from research.export import formats
from research.export.signature import input_names, read_signature


def load_stablehlo(directory: str):
    """The module, run by XLA (compiled once a batch size)."""
    signature, path = _signature_and_file(directory, "stablehlo")
    with open(path, "rb") as f, _damaged(path):
        exported = jax.export.deserialize(bytearray(f.read()))
    call = jax.jit(exported.call)
    return signature, lambda batch: np.asarray(call({k: batch[k] for k in input_names(signature)}))


def load_onnx(directory: str):
    """The ONNX model, run by onnxruntime on the CPU."""
    import onnxruntime

    signature, path = _signature_and_file(directory, "onnx")
    with _damaged(path):
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return signature, lambda batch: session.run(None, {k: batch[k] for k in input_names(signature)})[0]


@contextlib.contextmanager
def _damaged(path: str):
    """Whatever a format's reader raises on a file it cannot read, as one line naming the file."""
    try:
        yield
    except Exception as e:  # The readers raise their own types (struct, protobuf, flatbuffers).
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{path} cannot be read ({type(e).__name__}: {first}): the export is damaged; "
                        "write it again with experiments.export") from e


def _signature_and_file(directory: str, name: str) -> tuple[dict, str]:
    signature = read_signature(directory)
    file = formats.get(name).file
    if not os.path.exists(os.path.join(directory, file)):
        raise UserError(f"{directory} has no {file}; write it with experiments.export --format={name}")
    return signature, os.path.join(directory, file)
