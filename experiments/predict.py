"""Predicts the class of files with a classifier run: one JSON line a file.

  python -m experiments.predict --workdir=runs/fashion_mnist_cnn --input=shoe.png --input=dir/
      [--backend=jax|stablehlo|onnx|auto] [--checkpoint=best] [--quantized=w8a8_static]

Inputs: PNG/JPEG images (converted to the model's channels and resized to its size), .npy
arrays of the model's input shape, .txt texts, or directories of them. --backend=jax runs the
checkpoint; stablehlo and onnx (onnxruntime) run <workdir>/export/ (experiments.export),
without the dataset; --quantized=MODE the int8 model (its export: <workdir>/export_<mode>/).
Each line: {"input": PATH, "class": K, "name": NAME, "probabilities": [...]}.
"""

import json

from absl import app, flags

from experiments import common
from research.export import formats

flags.DEFINE_string("workdir", None, "Workdir of a classifier run of experiments.train.")
flags.DEFINE_multi_string("input", None, "A file or a directory of files; repeat for more.")
flags.DEFINE_string("backend", "jax", f"jax (the checkpoint), {formats.either(formats.names())} (the "
                    "export), or auto (the fastest export of the checkpoint the run has, as "
                    "experiments.serve picks it).")
flags.DEFINE_string("checkpoint", "best", "With --backend=jax: best, latest or a saved step.")
flags.DEFINE_string("quantized", "", f"A post-training int8 mode ({', '.join(formats.INT8_MODES)}): the "
                    f"run's int8 model (jax: quantized now; {', '.join(formats.names())}: its "
                    "export_<mode>/).")
flags.mark_flags_as_required(["workdir", "input"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from research.serve import predict

    f = flags.FLAGS
    for result in common.run_or_exit(predict.predict, f.workdir, f.input, backend=f.backend,
                                     checkpoint_name=f.checkpoint, quantized=f.quantized):
        print(json.dumps(result))


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
