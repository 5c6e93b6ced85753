"""Exports a classifier run for use outside this codebase, into <workdir>/export/.

  python -m experiments.export --workdir=runs/fashion_mnist_cnn [--checkpoint=best|latest|STEP]
      [--format=stablehlo,onnx] [--measure_latency]
  python -m experiments.export --workdir=runs/fashion_mnist_cnn --quantized=w8a8_static

Writes model.stablehlo (jax.export) and model.onnx (jax2onnx), both for any batch size,
signature.json (inputs, preprocessing, class names) and, for text runs, tokenizer.model; fails
without writing if an exported model differs from the JAX model by more than 1e-5 on a batch
of the test split (the ONNX model run by onnxruntime). --quantized exports the run's int8
model into <workdir>/export_<mode>/: StableHLO holds Qwix's post-training quantization, ONNX
onnxruntime's own of the float ONNX model (w8a8, w8a8_static; checked by agreeing with the JAX
int8 model's class on 95% of the test rows); --measure_latency times each exported model in
its runtime (onnxruntime, XLA) at batch sizes 1 and 256, --evaluate runs it over the whole
test split.
"""

from absl import app, flags

from experiments import common
from research.export import formats

flags.DEFINE_string("workdir", None, "Workdir of a classifier run of experiments.train.")
flags.DEFINE_string("checkpoint", "best", "best, latest or a saved step number.")
flags.DEFINE_list("format", formats.names(), f"Formats to write: {', '.join(formats.names())}.")
flags.DEFINE_string("quantized", "", f"A post-training int8 mode ({', '.join(formats.INT8_MODES)}) to "
                    f"export instead of the float model{formats.int8_limits()}.")
flags.DEFINE_bool("measure_latency", False, "Time each exported model at batch sizes 1 and 256; "
                  "written to signature.json.")
flags.DEFINE_bool("evaluate", False, "Run each exported model over the whole test split; its "
                  "accuracy is printed and written to signature.json.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from research.export import exporting

    f = flags.FLAGS
    signature = common.run_or_exit(exporting.export_workdir, f.workdir, checkpoint_name=f.checkpoint,
                                   formats=f.format, quantized=f.quantized,
                                   measure_latency=f.measure_latency, evaluate=f.evaluate)
    for name, written in signature["formats"].items():
        timing = written.get("latency_s")
        timing = "" if timing is None else (f"; {timing['1'] * 1e3:.3f} ms at batch 1, "
                                            f"{timing['256'] / 256 * 1e6:.1f} us an example at batch 256")
        if "test_accuracy" in written:
            timing += f"; test accuracy {written['test_accuracy']:.2%}"
        check = (f"the JAX int8 model's class on {written['agreement']:.1%} of" if "agreement" in written
                 else f"max |difference| to JAX {written['max_abs_diff']:.2g} on")
        print(f"{name}: {formats.export_dir(f.workdir, f.quantized)}/{written['file']} ({written['bytes']:,} "
              f"bytes), step {signature['step']}, {check} {written['checked_rows']} test rows{timing}")


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
