"""Exporting a run: `export_workdir` writes its model in each format asked for, checks every file
against the JAX model, and replaces the run's export only once all have passed."""

import importlib.metadata
import os
import shutil

import jax
import numpy as np

from research import workdir as workdir_lib
from research.data import text
from research.errors import UserError
from research.export import formats as formats_lib
from research.export import measure, model

TOLERANCE = 1e-5  # Largest absolute difference in a probability, float32.
INT8_AGREEMENT = 0.95  # Least share of check rows another quantizer's int8 model classifies as Qwix's.


def export_workdir(workdir: str, *, checkpoint_name: str = "best", formats=None, quantized: str = "",
                   measure_latency: bool = False, latency_seconds: float = 1.0,
                   evaluate: bool = False) -> dict:
    """Writes `formats_lib.export_dir(workdir, quantized)` in each of `formats` (every format by
    default), replacing an earlier export only once every new file has passed its check; returns
    the signature. `measure_latency` adds each format's seconds a call at batch sizes 1 and 256
    (its own runtime, this machine; the median of calls made for about `latency_seconds` at each
    size); `evaluate` each exported model's accuracy on the whole
    evaluation split."""
    formats = formats_lib.names() if formats is None else list(formats)
    unknown = sorted(set(formats) - set(formats_lib.names()))
    if unknown or not formats:
        raise UserError(f"unknown export format(s) {unknown}; choose from {sorted(formats_lib.names())}")
    chosen = [formats_lib.get(name) for name in formats]
    formats_lib.check_quantized(quantized, chosen)
    source = model.load(workdir, checkpoint_name, quantized)
    batch = model.test_batch(source)
    expected = source.probabilities(batch)
    target = formats_lib.export_dir(workdir, quantized)
    staging = target + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    signature = dict(source.signature, formats={})
    workdir_lib.write_json(os.path.join(staging, "signature.json"), signature)  # Read by the checks.
    if "tokenizer" in signature:
        shutil.copyfile(text.run_tokenizer_file(workdir), os.path.join(staging, "tokenizer.model"))
    try:
        for written in chosen:
            facts, run_exported = _write_and_check(written, source, staging, batch, expected, quantized)
            if measure_latency:
                facts["latency_s"] = measure.latency(run_exported, batch, seconds=latency_seconds)
            if evaluate:
                facts["test_accuracy"] = measure.test_accuracy(run_exported, source)
            signature["formats"][written.name] = facts
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    signature["versions"] = {"jax": jax.__version__, **{package: importlib.metadata.version(package)
                                                        for written in chosen for package in written.needs}}
    workdir_lib.write_json(os.path.join(staging, "signature.json"), signature)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return signature


def _write_and_check(written: formats_lib.Format, source: model.Model, staging: str, batch: dict,
                     expected: np.ndarray, quantized: str) -> tuple[dict, object]:
    """Writes `source` in the format `written` into `staging` and runs the file there on `batch`:
    the JAX model's probabilities within `TOLERANCE`, or, made by another quantizer, its classes
    on `INT8_AGREEMENT` of the rows. Returns what signature.json says of the file, and the
    loaded file (batch -> probabilities)."""
    made = written.write(source, os.path.join(staging, written.file), quantized)
    _, run_exported = written.load(staging)
    probabilities = np.asarray(run_exported(batch))
    difference = float(np.abs(probabilities - expected).max())
    if not written.same_model(quantized):  # Another quantizer: the same classes, not the same probabilities.
        made["agreement"] = float(np.mean(probabilities.argmax(-1) == expected.argmax(-1)))
        if not made["agreement"] >= INT8_AGREEMENT:
            raise UserError(f"the int8 {written.name} model gives the JAX int8 model's class on "
                            f"{made['agreement']:.1%} of {len(expected)} test rows (less than "
                            f"{INT8_AGREEMENT:.0%}); nothing was written")
    elif not difference <= TOLERANCE:
        raise UserError(f"the exported {written.name} model's probabilities differ from the JAX model's by "
                        f"{difference:.3g} (more than {TOLERANCE}) on {len(expected)} test rows; "
                        "nothing was written")
    size = sum(os.path.getsize(os.path.join(staging, f)) for f in written.files
               if os.path.exists(os.path.join(staging, f)))
    facts = {"file": written.file, "bytes": size, "checked_rows": len(expected), "max_abs_diff": difference,
             **made}
    return facts, run_exported
