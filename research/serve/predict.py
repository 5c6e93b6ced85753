"""The predictor experiments.predict and experiments.serve share, and predictions for files:
images (PNG, JPEG), arrays (.npy), texts (.txt), or directories of them, from a run's
checkpoint (backend "jax") or its export (a backend for each of research/export's formats,
which need neither the dataset nor this codebase's models); backend "auto" takes the fastest
export the run has of the checkpoint asked for (`fastest`)."""

import io
import os

import numpy as np
from PIL import Image

from research.data import tokenizer
from research.errors import UserError
from research.export import formats, model
from research.export.signature import read_signature

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SUFFIXES = (*IMAGE_SUFFIXES, ".npy", ".txt")
BACKENDS = ("auto", "jax", *formats.names())
# The exports backend "auto" may serve, in the order it prefers them when their latencies were
# not all measured (`experiments.export --measure_latency`); measured, the fastest for one
# request wins. The order is the Fashion-MNIST CNN teacher's on a 2-core CPU
# (docs/tables/compression.md, per example at batch 256): onnxruntime's int8 with calibrated
# scales 190 us, float ONNX 258 us, StableHLO in XLA 172 us at batch 256 but 0.50 ms against
# ONNX's 0.24 ms for one request. Smaller models turn it round (the teacher pruned to half its
# channels: float ONNX 0.065 ms a request, its int8 0.069 ms), hence measurements first. int8
# with per-call scales (w8a8) is slower than float in both runtimes (637 us, 1761 us) and is
# served only when asked for.
AUTO_ORDER = (("onnx", "w8a8_static"), ("onnx", ""), ("stablehlo", ""))


def expand(paths: list[str]) -> list[str]:
    """The files named, a directory standing for its files of a known kind (sorted)."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, name) for name in os.listdir(path)
                           if name.lower().endswith(SUFFIXES))
            if not found:
                raise UserError(f"{path} holds no {'/'.join(SUFFIXES)} files")
            files += found
        elif not os.path.exists(path):
            raise UserError(f"{path} does not exist")
        else:
            files.append(path)
    return files


class Reader:
    """Turns a file into one row of the model's inputs, as its signature describes them."""

    def __init__(self, signature: dict, directory: str | None):
        self.signature = signature
        self.first = signature["inputs"][0]
        self.tokenizer = None
        if signature["kind"] == "tokens":
            self.tokenizer = tokenizer.load(os.path.join(directory, signature["tokenizer"]))

    def row(self, path: str) -> dict:
        with open(path, "rb") as f:
            return self.decode(os.path.splitext(path)[1].lower(), f.read(), path)

    def decode(self, suffix: str, data: bytes, name: str) -> dict:
        """One row from the bytes of a file of kind `suffix` (".png", ".npy", ".txt", ...);
        `name` is what error messages call it."""
        kind = self.signature["kind"]
        if suffix in IMAGE_SUFFIXES and kind == "image":
            return {"image": self._image(data, self.shape, name)}
        if suffix == ".txt" and kind == "tokens":
            try:
                return self.text(data.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise UserError(f"{name} is not UTF-8 text: {e}") from e
        if suffix == ".npy" and kind != "tokens":
            try:
                array = np.load(io.BytesIO(data), allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise UserError(f"{name} is not a readable .npy array: {e}") from e
            return self.array(array, name)
        wanted = {"image": "PNG/JPEG images or .npy arrays", "tokens": ".txt texts"}.get(kind, ".npy arrays")
        raise UserError(f"{name}: this model reads {wanted}")

    @property
    def shape(self) -> tuple:
        return tuple(self.first["shape"][1:])

    def array(self, array, name: str) -> dict:
        """A row from an array of the model's input shape (a missing channel axis of 1 allowed)."""
        array = np.asarray(array)
        if array.shape != self.shape and array.shape + (1,) != self.shape:
            raise UserError(f"{name} has shape {array.shape}; the model takes {self.shape}")
        if array.dtype.kind not in "biuf":
            raise UserError(f"{name} holds {array.dtype} values, not numbers")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise UserError(f"{name} holds NaN or infinite values")
        dtype = np.dtype(self.first["dtype"])
        if dtype.kind in "iu":  # Pixels: whole numbers the dtype holds, never cast silently.
            limits = np.iinfo(dtype)
            if array.size and (array.min() < limits.min or array.max() > limits.max):
                raise UserError(f"{name} holds values from {array.min()} to {array.max()}; the model "
                                f"reads {dtype} values from {limits.min} to {limits.max}")
            if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
                raise UserError(f"{name} holds fractions; the model reads whole {dtype} values")
        return {self.first["name"]: array.reshape(self.shape).astype(dtype)}

    def text(self, text: str) -> dict:
        if self.tokenizer is None:
            raise UserError("this model does not read text")
        tokens, mask = self.tokenizer.encode([text], self.signature["max_len"], add_bos=True)
        return {"tokens": tokens[0], "token_mask": mask[0]}

    @staticmethod
    def _image(data: bytes, shape: tuple, name: str) -> np.ndarray:
        height, width, channels = shape
        try:
            with Image.open(io.BytesIO(data)) as image:
                image = image.convert("L" if channels == 1 else "RGB")
                if image.size != (width, height):  # The model's input size, as a user expects.
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, np.uint8)
        except (OSError, Image.DecompressionBombError) as e:
            raise UserError(f"{name} is not an image PIL can read ({type(e).__name__})") from e
        return pixels.reshape(shape)


def fastest(workdir: str, checkpoint_name: str = "best", quantized: str = "") -> tuple[str, str]:
    """(backend, int8 mode or "") of the export in AUTO_ORDER (with `quantized`: of that mode)
    that `workdir` has of its checkpoint `checkpoint_name` and that answers one request
    fastest, where every such export's latency was measured; else the first of them in the
    order; ("jax", quantized) when it has none. An export of another step is passed over (the
    run trained on after it), and an int8 ONNX export exists only where it gave the JAX int8
    model's classes when written (research/export/exporting.py)."""
    from research.run import checkpoint  # Orbax: only the choice of a backend needs it.

    step = checkpoint.resolve(workdir, checkpoint_name)
    order = AUTO_ORDER
    if quantized:  # That int8 model: from the formats holding it, in the order's preference.
        order = [(name, quantized) for name, _ in AUTO_ORDER if quantized in formats.get(name).int8_modes]
    found = []  # (backend, mode, seconds a call at batch 1 or None)
    for backend, mode in order:
        directory = formats.export_dir(workdir, mode)
        if not os.path.exists(os.path.join(directory, "signature.json")):
            continue
        signature = read_signature(directory)
        written = signature.get("formats", {}).get(backend)
        if written is not None and signature.get("step") == step:
            found.append((backend, mode, written.get("latency_s", {}).get("1")))
    if not found:
        return "jax", quantized
    if all(seconds is not None for _, _, seconds in found):
        found = sorted(found, key=lambda f: f[2])  # Stable: ties keep the order's preference.
    return found[0][0], found[0][1]


def predictor(workdir: str, backend: str, checkpoint_name: str = "best", quantized: str = ""):
    """(signature, reader, batch -> probabilities) of a run, by backend; with `quantized` (a
    post-training int8 mode), of its int8 model (jax: Qwix's, quantized now; an export format:
    the int8 export, `<workdir>/export_<mode>/`). The signature says what answers: "backend",
    "quantized" ("" for float) and "chosen" ("auto" when `fastest` picked it, else "asked")."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    chosen = "auto" if backend == "auto" else "asked"
    if backend == "auto":
        formats.check_quantized(quantized)
        backend, quantized = fastest(workdir, checkpoint_name, quantized)
    signature, reader, run = _predictor(workdir, backend, checkpoint_name, quantized)
    return {**signature, "backend": backend, "quantized": quantized, "chosen": chosen}, reader, run


def _predictor(workdir: str, backend: str, checkpoint_name: str, quantized: str):
    if backend == "jax":
        formats.check_quantized(quantized)
        loaded = model.load(workdir, checkpoint_name, quantized)
        from research.data import text  # Only runs over texts have a tokenizer file.

        directory = None
        if loaded.signature["kind"] == "tokens":
            directory = os.path.dirname(text.run_tokenizer_file(workdir))
            loaded.signature["tokenizer"] = os.path.basename(text.run_tokenizer_file(workdir))
        return loaded.signature, Reader(loaded.signature, directory), loaded.probabilities
    exported = formats.get(backend)
    formats.check_quantized(quantized, [exported])
    directory = formats.export_dir(workdir, quantized)
    signature, run = exported.load(directory)
    return signature, Reader(signature, directory), run


def predict(workdir: str, paths: list[str], *, backend: str = "jax", checkpoint_name: str = "best",
            quantized: str = "", batch_size: int = 64) -> list[dict]:
    """One result a file: {"input", "class", "name", "probabilities"}."""
    files = expand(paths)
    signature, reader, run = predictor(workdir, backend, checkpoint_name, quantized)
    rows = [reader.row(path) for path in files]  # Every file is read before anything runs.
    results = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        batch = {name: np.stack([row[name] for row in chunk]) for name in chunk[0]}
        for path, probabilities in zip(files[start:], run(batch), strict=False):
            results.append({"input": path, **answer(signature, probabilities)})
    return results


def answer(signature: dict, probabilities: np.ndarray) -> dict:
    """The predicted class, its name and every class's probability."""
    k = int(np.argmax(probabilities))
    return {"class": k, "name": signature["class_names"][k],
            "probabilities": [round(float(p), 6) for p in probabilities]}
