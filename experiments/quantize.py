"""Quantizes a classifier run after training (int8, Qwix) and compares it with the float model:
test metrics, weight bytes and forward examples/s on this machine.

  python -m experiments.quantize --workdir=runs/fashion_mnist_cnn --mode=ptq \\
      [--weights_activations=w8|w8a8|w8a8_static --calibration_batches=8 --checkpoint=best]

Writes <workdir>/quantized/<w8|w8a8|w8a8_static>.json; `experiments.evaluate
--quantized=w8a8` evaluates the same quantized model again. research/compress/quantize.py says
what each mode quantizes.
"""

from absl import app, flags

from experiments import common

flags.DEFINE_string("workdir", None, "Workdir of a classifier run of experiments.train.")
flags.DEFINE_enum("mode", "ptq", ["ptq"], "ptq: post-training quantization (QAT is a training "
                  "config: --config.quant.mode=qat).")
flags.DEFINE_string("weights_activations", "w8a8", "w8 (int8 weights), w8a8 (and int8 activations, "
                    "dynamic scales) or w8a8_static (activation scales calibrated on training batches).")
flags.DEFINE_integer("calibration_batches", 8, "Training batches w8a8_static calibrates on.")
flags.DEFINE_string("checkpoint", "best", "best, latest or a saved step number.")
flags.DEFINE_string("split", "test", "Dataset split to evaluate on.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from research.train import quantized

    f = flags.FLAGS
    results = common.run_or_exit(
        quantized.evaluate_quantized, f.workdir, f.weights_activations, checkpoint_name=f.checkpoint,
        split_name=f.split, calibration_batches=f.calibration_batches, measure_speed=True)
    for name in ("float", "quantized"):
        row = results[name]
        metrics = " ".join(f"{k}={v:.4f}" for k, v in row.items() if k.startswith("eval/"))
        print(f"{name}: {metrics} weights={row['weight_bytes']:,} bytes "
              f"forward={row['examples_per_sec']:,.0f} examples/s")


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
