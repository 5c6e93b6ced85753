"""Benchmarks experiment configs on this machine and, with --torch, the same models in PyTorch.

  .venv/bin/python -m benchmarks --torch --json_out=bench.json --md_out=bench.md
  .venv/bin/python -m benchmarks --config=configs/fashion_mnist_cnn.py --profile_steps=20

Run from the repository root. For each --config (`path.py[:arg]`; `transformer`: the
Transformer classifier on random tokens; `lm[:size=S]`: configs/lm.py's language model on
random tokens; benchmarks/cases.py) it measures in one run:
  - the train step alone: compile time; examples/s, the median over timed windows of
    back-to-back calls on one resident batch after a warm-up (calls of train.steps_per_call
    steps, as the loop makes them); FLOPs from XLA's cost analysis of the compiled step, the
    FLOP/s they make and the fraction of the matmul peak measured at the start of the run;
  - with --torch (the `bench` extra, `scripts/setup.sh --bench`): the PyTorch twin of the
    model (benchmarks/torch_twins.py), timed in windows alternating with ours so that load from
    other processes falls on both alike; --torch_compile adds torch.compile;
  - the input pipeline alone: pipeline.train_batches + sharding.put_batch, no step; with
    --streamed_workers=N (repeatable), also with the split streamed from disk and N Grain
    worker processes;
  - end to end: research.train.loop.train_and_evaluate in a temporary workdir at the config's
    log, eval and checkpoint cadence, over a span of steps that holds one evaluation and
    checkpoint (timed from the TensorBoard wall times of the first and last train log rows,
    so start-up is excluded, less the compilation JAX reports inside that span); the loop's
    overhead is 1 - end-to-end / step, the step timed in windows just before and after it;
  - for language models, tokens/s and MFU: model FLOPs (6 x non-embedding parameters +
    attention, a token) over the matmul peak, or over the chip's peak on a known accelerator;
  - with --profile_steps: the step's most expensive XLA ops, from a profiler trace.
Once per run: the time of `python -m experiments.train --help`, and launch to the first
finished train step of --startup_config (until its metrics.jsonl has the step-1 row).
"""

import json
import sys

from absl import app, flags
from absl import logging as absl_logging

from benchmarks import machine, measure, report, startup, timing
from research import platform

DEFAULT_CONFIGS = ["configs/fashion_mnist_mlp.py", "configs/fashion_mnist_cnn.py", "transformer", "lm"]
flags.DEFINE_multi_string("config", DEFAULT_CONFIGS, "Config file(s), optionally with ':arg', or "
                          "'transformer' (random tokens, sizes in transformer_config), or 'lm[:size=S]' "
                          "(configs/lm.py on random tokens).")
flags.DEFINE_integer("windows", 5, "Timed windows per measurement.")
flags.DEFINE_float("window_seconds", 2.0, "Target length of a window; sets its number of steps.")
flags.DEFINE_integer("steps_per_window", 0, "Steps per window; 0: from --window_seconds.")
flags.DEFINE_integer("warmup_steps", 5, "Untimed steps before the windows.")
flags.DEFINE_bool("torch", False, "Time the PyTorch twin of each model beside ours.")
flags.DEFINE_bool("torch_compile", False, "Also time the PyTorch twin under torch.compile.")
flags.DEFINE_bool("pipeline", True, "Time the input pipeline alone.")
flags.DEFINE_multi_integer("streamed_workers", [], "Also time the input pipeline with the split "
                           "streamed from disk (data.in_memory=false), with each of these numbers "
                           "of Grain worker processes.")
flags.DEFINE_integer("e2e_steps", 0, "Steps of the end-to-end run; 0: enough for one evaluation "
                     "period between two log rows. -1: skip.")
flags.DEFINE_integer("profile_steps", 0, "Steps to trace for the per-op profile; 0: none.")
flags.DEFINE_integer("profile_top", 12, "Ops shown per profile.")
flags.DEFINE_integer("matmul_size", 2048, "Side of the float32 matmul that measures the peak.")
flags.DEFINE_string("startup_config", "configs/fashion_mnist_cnn.py",
                    "Config for the launch-to-first-step time; '' skips the start-up measurements.")
flags.DEFINE_string("json_out", "", "Write the measurements here as JSON.")
flags.DEFINE_string("md_out", "", "Write the markdown tables here (they are printed too).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    platform.apply(cache=False)  # Compile times are measured, so nothing comes from a cache.
    absl_logging.set_verbosity(absl_logging.WARNING)  # Orbax logs every file it writes.
    with_torch = FLAGS.torch or FLAGS.torch_compile
    windows = timing.Windows(count=FLAGS.windows, seconds=FLAGS.window_seconds,
                             steps=FLAGS.steps_per_window, warmup_steps=FLAGS.warmup_steps)
    results = {"machine": machine.machine(torch=with_torch), "argv": sys.argv,
               "matmul_peak": timing.matmul_peak(FLAGS.matmul_size, max(FLAGS.windows, 7), torch=with_torch)}
    results["results"] = [
        measure.config_row(spec, windows, torch=FLAGS.torch, torch_compile=FLAGS.torch_compile,
                           pipeline=FLAGS.pipeline, streamed_workers=FLAGS.streamed_workers,
                           profile_steps=FLAGS.profile_steps, profile_top=FLAGS.profile_top,
                           e2e_steps=FLAGS.e2e_steps)
        for spec in FLAGS.config]
    for row in results["results"]:
        measure.add_peak_figures(row, results["matmul_peak"]["gflops"],
                                 results["machine"]["vendor_peak_tflops"])
    results["startup"] = startup.startup(FLAGS.startup_config) if FLAGS.startup_config else None
    table = report.markdown(results)
    print("\n" + table)
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(results, f, indent=2)
    if FLAGS.md_out:
        with open(FLAGS.md_out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    app.run(main)
