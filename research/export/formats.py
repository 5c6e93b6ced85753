"""The export formats: one registry, the one place a format is named.

An entry is a format: its name (the value of experiments.export --format, of predict's and
serve's --backend, and its key in signature.json's "formats"), the files it writes into the
export directory, its writer and loader, the int8 models it holds and what it needs installed.
Writer and loader are named here, not imported, so this module imports no JAX: the programs
build their flags' help and check their values from it before they parse their flags.

A new format is an entry in `FORMATS`, its writer in writers.py and its loader in loaders.py.
"""

import dataclasses
import importlib
import os

from research.errors import UserError

# The post-training int8 modes and what each adds to the one before: research/compress/quantize.py's
# PTQ_MODES (tests/export holds the two equal), named here so the programs' help needs no Qwix.
INT8_MODES = {"w8": "int8 weights", "w8a8": "and int8 activations, dynamic scales",
              "w8a8_static": "activation scales calibrated on training batches"}


@dataclasses.dataclass(frozen=True)
class Format:
    name: str
    title: str  # As prose names it.
    files: tuple[str, ...]  # The model file its loader reads, then files the writer may add beside it.
    writer: str  # writers.py's (model, path) -> facts for signature.json, of the float model.
    loader: str  # loaders.py's export directory -> (signature, batch -> probabilities).
    int8_modes: tuple[str, ...] = ()  # The post-training int8 models it holds.
    # writers.py's writer of an int8 model made by another quantizer than Qwix (from the float
    # model; it rounds differently, so it is checked by the classes it gives). Without one,
    # `writer` writes Qwix's int8 model, checked like the float one.
    int8_writer: str = ""
    int8_quantizer: str = "Qwix's quantization"  # Who makes its int8 models, for messages.
    needs: tuple[str, ...] = ()  # Packages its writer and loader import; signature.json has their versions.

    @property
    def file(self) -> str:
        return self.files[0]

    def same_model(self, quantized: str) -> bool:
        """Whether it holds the JAX model itself (float, or Qwix's int8 model)."""
        return not (quantized and self.int8_writer)

    def write(self, model, path: str, quantized: str = "") -> dict:
        """Writes `model` (model.Model) to `path`; returns what signature.json says of how."""
        writers = importlib.import_module("research.export.writers")
        return getattr(writers, self.writer if self.same_model(quantized) else self.int8_writer)(model, path)

    def load(self, directory: str):
        """(signature, batch dict -> probabilities) of the export in `directory`."""
        return getattr(importlib.import_module("research.export.loaders"), self.loader)(directory)


FORMATS = (
    Format("stablehlo", "StableHLO", ("model.stablehlo",), writer="write_stablehlo",
           loader="load_stablehlo", int8_modes=tuple(INT8_MODES)),
    Format("onnx", "ONNX", ("model.onnx", "model.onnx.data"), writer="write_onnx", loader="load_onnx",
           int8_modes=("w8a8", "w8a8_static"), int8_writer="write_int8_onnx",
           int8_quantizer="onnxruntime's quantization", needs=("jax2onnx", "onnx", "onnxruntime")),
)


def names() -> list[str]:
    return [f.name for f in FORMATS]


def get(name: str) -> Format:
    return {f.name: f for f in FORMATS}[name]


def check_quantized(quantized: str, formats: list[Format] = ()) -> None:
    """Refuses an unknown int8 mode, or one that one of `formats` does not hold."""
    if not quantized:
        return
    if quantized not in INT8_MODES:
        raise UserError(f"unknown quantization mode {quantized!r}; choose one of {list(INT8_MODES)}")
    for f in formats:
        if quantized not in f.int8_modes:
            holding = ",".join(g.name for g in FORMATS if quantized in g.int8_modes)
            held = (f"an int8 {f.title} export is of mode {either(f.int8_modes)} ({f.int8_quantizer})"
                    if f.int8_modes else f"{f.title} holds no int8 model")
            raise UserError(f"{held}; --quantized={quantized} exports as --format={holding} only")


def export_dir(workdir: str, quantized: str = "") -> str:
    """Where a run's export is written: `export/`, or `export_<mode>/` for an int8 one."""
    return os.path.join(workdir, f"export_{quantized}" if quantized else "export")


def either(words) -> str:
    """"a", "a or b", "a, b or c": a choice, for help and messages."""
    words = list(words)
    return " or ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} or {words[-1]}"


def int8_limits() -> str:
    """The int8 modes that only some formats hold, for help: " (w8: StableHLO only)"."""
    limits = [f"{mode}: {' and '.join(f.title for f in FORMATS if mode in f.int8_modes)} only"
              for mode in INT8_MODES if any(mode not in f.int8_modes for f in FORMATS)]
    return f" ({'; '.join(limits)})" if limits else ""
