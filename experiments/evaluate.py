"""Evaluates a checkpoint of a finished or running workdir on a split.

  python -m experiments.evaluate --workdir=runs/fashion_mnist_cnn [--checkpoint=best|latest|STEP]
      [--split=test] [--quantized=w8|w8a8|w8a8_static]
"""

from absl import app, flags

from experiments import common

flags.DEFINE_string("workdir", None, "Workdir of a run of experiments.train.")
flags.DEFINE_string("checkpoint", "best", "best, latest or a saved step number.")
flags.DEFINE_string("split", "test", "Dataset split to evaluate on.")
flags.DEFINE_string("quantized", "", "Evaluate the checkpoint quantized after training: w8, w8a8 or "
                    "w8a8_static (experiments.quantize); prints the float and the quantized metrics.")
common.define_distributed_flags()
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from research.train import evaluation

    flags_ = flags.FLAGS
    if flags_.quantized:
        from research.train import quantized

        results = common.run_or_exit(quantized.evaluate_quantized, flags_.workdir, flags_.quantized,
                                     checkpoint_name=flags_.checkpoint, split_name=flags_.split)
        for name in ("float", "quantized"):
            print(f"{name}: " + " ".join(f"{k}={v:.4f}" for k, v in results[name].items()))
        return
    results = common.run_or_exit(
        evaluation.evaluate_workdir, flags_.workdir, checkpoint_name=flags_.checkpoint,
        split_name=flags_.split)
    print(common.summary_line(results))


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
