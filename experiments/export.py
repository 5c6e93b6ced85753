"""Exports a classifier run for use outside this codebase, into <workdir>/export/.

  python -m experiments.export --workdir=runs/fashion_mnist_cnn [--checkpoint=best|latest|STEP]
      [--format=stablehlo,onnx]

Writes model.stablehlo (jax.export) and model.onnx (jax2onnx), both for any batch size,
signature.json (inputs, preprocessing, class names) and, for text runs, tokenizer.model; fails
without writing if an exported model differs from the JAX model by more than 1e-5 on a batch
of the test split (the ONNX model run by onnxruntime).
"""

from absl import app, flags

from experiments import common

flags.DEFINE_string("workdir", None, "Workdir of a classifier run of experiments.train.")
flags.DEFINE_string("checkpoint", "best", "best, latest or a saved step number.")
flags.DEFINE_list("format", ["stablehlo", "onnx"], "Formats to write: stablehlo, onnx.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from research.serve import export

    f = flags.FLAGS
    signature = common.run_or_exit(export.export_workdir, f.workdir, checkpoint_name=f.checkpoint,
                                   formats=f.format)
    for name, written in signature["formats"].items():
        print(f"{name}: {f.workdir}/export/{written['file']} ({written['bytes']:,} bytes), step "
              f"{signature['step']}, max |difference| to JAX {written['max_abs_diff']:.2g} on "
              f"{written['checked_rows']} test rows")


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
