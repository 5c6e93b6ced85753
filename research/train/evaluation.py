"""Evaluation: one pass of the eval step over a split, every example exactly once."""

import itertools
import os

import jax
import numpy as np

from research import metrics, plots, tasks
from research import workdir as workdir_lib
from research.data import pipeline
from research.data.sources import Split
from research.parallel import distributed, sharding
from research.parallel.inflight import InFlight
from research.run import restore
from research.train import metric_writer, steps


def accumulate(eval_step, variables, split: Split, *, batch_size: int, mesh,
               max_batches: int = 0) -> dict:
    """The eval step's sums over every example of `split` (of its first `max_batches` batches
    when above 0), on the host."""
    totals, in_flight = None, InFlight()
    rows = sharding.process_rows(mesh, batch_size)
    batches = pipeline.eval_batches(split.arrays, batch_size=batch_size, rows=rows)
    for batch in itertools.islice(batches, max_batches or None):
        sums = eval_step(variables, sharding.put_batch(batch, mesh))
        totals = sums if totals is None else jax.tree.map(lambda a, b: a + b, totals, sums)
        in_flight.add(totals)
    return jax.device_get(totals)


def evaluate(eval_step, task, variables, split: Split, *, batch_size: int,
             mesh) -> tuple[dict, np.ndarray | None]:
    """The task's summary of one pass over `split`, and its confusion matrix (None for a
    language model)."""
    return task.summarize(accumulate(eval_step, variables, split, batch_size=batch_size, mesh=mesh))


def final_results(step: int, steps_per_epoch: int, split_name: str, summary: dict,
                  confusion: np.ndarray | None, max_batches: int = 0) -> dict:
    """What a finished run's results.json holds (with `eval_max_batches` when the evaluation
    read only that many batches of the split)."""
    capped = {"eval_max_batches": max_batches} if max_batches else {}
    return {"step": step, "epochs": step / steps_per_epoch, **capped,
            **metrics.named_eval(summary, split_name, confusion)}


def write_final_results(workdir: str, results: dict, *, split_name: str, confusion: np.ndarray | None,
                        class_names) -> None:
    """A finished run's results.json, learning-curve and (for classifiers) confusion-matrix PNGs."""
    step = results["step"]
    workdir_lib.write_json(os.path.join(workdir, "results.json"), results)
    plots.learning_curves(metric_writer.read_metrics(workdir),
                          os.path.join(workdir, "plots", "learning_curves.png"), title=workdir)
    if confusion is not None:
        plots.confusion_matrix(confusion, class_names,
                               os.path.join(workdir, "plots", f"confusion_{split_name}.png"),
                               title=f"{split_name}, step {step}")


def plot_predictions(workdir: str, exp, variables, split) -> None:
    """For a binary classifier of 2-D points (`features` of width 2), plots/predictions.png: the
    predicted probability over the plane and the points of `split`."""
    features = split.arrays.get("features")
    binary = isinstance(exp.task, tasks.BinaryClassification)
    if not binary or features is None or features.shape[1:] != (2,):
        return

    @jax.jit
    def probability(variables, x):
        return jax.nn.sigmoid(exp.model.apply(variables, x, train=False))[:, 0]

    plots.predictions_2d(np.asarray(features), np.asarray(split.arrays["label"]),
                         lambda grid_Mx2: probability(variables, grid_Mx2.astype(np.float32)),
                         os.path.join(workdir, "plots", "predictions.png"),
                         class_names=split.class_names)


def evaluate_workdir(workdir: str, *, checkpoint_name: str = "best", split_name: str = "test") -> dict:
    """Evaluates a saved checkpoint of a run on a split; writes
    evaluations/step<N>_<split>.json and plots/confusion_<split>_step<N>.png."""
    run = restore.restore(workdir, checkpoint_name, split_name=split_name)
    config, exp, step = run.config, run.experiment, run.step
    eval_step = jax.jit(sharding.on_mesh(steps.make_eval_step(exp.model, exp.task), exp.mesh),
                        out_shardings=sharding.replicated(exp.mesh))
    summary, confusion = evaluate(
        eval_step, exp.task, run.variables, exp.eval_data, batch_size=config.eval.batch_size, mesh=exp.mesh)
    results = {"step": step, "checkpoint": checkpoint_name,
               **metrics.named_eval(summary, split_name, confusion)}
    if not distributed.is_primary():  # The first process of several writes the files.
        return results
    workdir_lib.write_json(os.path.join(workdir, "evaluations", f"step{step}_{split_name}.json"), results)
    if confusion is not None:
        plots.confusion_matrix(confusion, exp.eval_data.class_names,
                               os.path.join(workdir, "plots", f"confusion_{split_name}_step{step}.png"),
                               title=f"{split_name}, step {step}")
    return results
