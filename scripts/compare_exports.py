"""Times exported models against each other, interleaved: each round measures every model once
(research/export/measure.py's latency: the median call after warm-ups, at batch 1 and 256), and
each model's figure is the median over the rounds. On a shared or noisy machine one model's
latency drifts by tens of percent between runs; measured in turns, the models see the same
drift, so their ratios hold. A model is loaded afresh for its turn and let go after it: a
runtime's idle threads (onnxruntime's spin) would otherwise slow the next model's calls.

  .venv/bin/python scripts/compare_exports.py --export=runs/teacher/export \\
      --export=runs/shrunk50/export [--format=onnx --rounds=7 --seconds=1]
"""

import gc
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from research.export import formats, measure  # noqa: E402
from research.export.signature import read_signature  # noqa: E402

flags.DEFINE_multi_string("export", None, "An export directory (experiments.export's); repeat.")
flags.DEFINE_string("format", "onnx", f"The format timed: {formats.either(formats.names())}.")
flags.DEFINE_integer("rounds", 7, "Rounds; each times every model once.", lower_bound=1)
flags.DEFINE_float("seconds", 1.0, "Seconds of calls a model and batch size in a round.", lower_bound=0.1)
flags.mark_flags_as_required(["export"])


def main(argv):
    del argv
    f = flags.FLAGS
    batches = {}
    for directory in f.export:
        first = read_signature(directory)["inputs"][0]
        batches[directory] = {first["name"]: np.zeros((256, *first["shape"][1:]), first["dtype"])}
    times = {directory: [] for directory in batches}
    for _ in range(f.rounds):
        for directory, batch in batches.items():
            _, run = formats.get(f.format).load(directory)
            times[directory].append(measure.latency(run, batch, seconds=f.seconds))
            del run
            gc.collect()
    for directory, rounds in times.items():
        b1 = np.median([r["1"] for r in rounds])
        b256 = np.median([r["256"] for r in rounds])
        spread = np.ptp([r["256"] for r in rounds]) / b256
        print(f"{directory}: {b1 * 1e3:.3f} ms at batch 1, {b256 / 256 * 1e6:.1f} us an example at batch 256 "
              f"(median of {f.rounds} rounds; batch-256 rounds spread {spread:.0%})")


if __name__ == "__main__":
    app.run(main)
