"""A run's checkpoint quantized after training (research/compress/quantize.py's modes), evaluated
next to the float model, with its weight bytes and forward speed: `experiments.quantize`, and
`experiments.evaluate --quantized=MODE`."""

import os

import jax

from research import metrics
from research import workdir as workdir_lib
from research.compress import ptq, quantize
from research.data import pipeline
from research.errors import UserError
from research.models import model_inputs
from research.run import restore
from research.train import evaluation, steps


def evaluate_quantized(workdir: str, mode: str, *, checkpoint_name: str = "best", split_name: str = "test",
                       calibration_batches: int = ptq.CALIBRATION_BATCHES,
                       measure_speed: bool = False) -> dict:
    """The float and the quantized model's metrics on `split_name` and weight bytes (and, with
    `measure_speed`, examples/s of a forward pass on an evaluation batch, all written to
    <workdir>/quantized/<mode>.json)."""
    quantize.ptq_rules(mode)  # An unknown mode is refused before anything is read.
    if calibration_batches < 1:
        raise UserError(f"--calibration_batches={calibration_batches}; at least 1")
    run = restore.restore(workdir, checkpoint_name, split_name=split_name, one_device=True)
    config, exp, step = run.config, run.experiment, run.step
    variables = run.variables  # Qwix quantizes jax.Arrays (on the one device).
    model, quantized_variables = ptq.quantized_model(exp, variables, mode,
                                                     ptq.calibration_data(config, exp, calibration_batches))
    results = {"mode": mode, "step": step, "checkpoint": checkpoint_name, "split": split_name,
               "calibration_batches": calibration_batches if mode == "w8a8_static" else 0}
    for name, (m, v) in {"float": (exp.model, variables), "quantized": (model, quantized_variables)}.items():
        eval_step = jax.jit(steps.make_eval_step(m, exp.task))
        summary, _ = evaluation.evaluate(eval_step, exp.task, {**variables, "params": v["params"]},
                                         exp.eval_data, batch_size=config.eval.batch_size, mesh=exp.mesh)
        results[name] = metrics.named_eval(summary, split_name)
        results[name]["weight_bytes"] = quantize.weight_bytes(v["params"])
        if measure_speed:
            rows = next(pipeline.eval_batches(exp.eval_data.arrays, batch_size=config.eval.batch_size))
            x, inputs = model_inputs({k: val for k, val in rows.items() if k != "mask"})
            results[name]["examples_per_sec"] = quantize.examples_per_second(m, v, x, inputs)
    if measure_speed:
        workdir_lib.write_json(os.path.join(workdir, "quantized", f"{mode}.json"), results)
    return results
