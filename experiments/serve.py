"""Serves a classifier run over HTTP (research/serve/server.py says what it answers).

  python -m experiments.serve --workdir=runs/fashion_mnist_cnn [--port=8000 --host=127.0.0.1]
      [--backend=auto|jax|stablehlo|onnx --max_batch=32 --batch_wait_ms=2 --max_bytes=10000000]
      [--quantized=w8a8_static]  (the int8 model; stablehlo, onnx: its export_<mode>/)

  curl -s localhost:8000/predict -H "Content-Type: image/png" --data-binary @shoe.png
"""

import socket

from absl import app, flags, logging

from experiments import common
from research.errors import UserError
from research.export import formats

flags.DEFINE_string("workdir", None, "Workdir of a classifier run of experiments.train.")
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: every interface).")
flags.DEFINE_integer("port", 8000, "Port to listen on.", lower_bound=1, upper_bound=65535)
flags.DEFINE_string("backend", "auto", f"auto (the fastest export of the checkpoint the run has: int8 "
                    "ONNX with calibrated scales, float ONNX, StableHLO; else the checkpoint), jax (the "
                    f"checkpoint), {formats.either(formats.names())} (the export). /metadata says which "
                    "answers.")
flags.DEFINE_string("checkpoint", "best", "best, latest or a saved step: the checkpoint served (auto: "
                    "the one an export must be of).")
flags.DEFINE_string("quantized", "", f"A post-training int8 mode ({', '.join(formats.INT8_MODES)}): the "
                    f"run's int8 model (jax: quantized now; {', '.join(formats.names())}: its "
                    "export_<mode>/).")
flags.DEFINE_integer("max_batch", 32, "Most requests answered by one call of the model.", lower_bound=1)
flags.DEFINE_float("batch_wait_ms", 2.0, "How long a batch waits for more requests after its first.",
                   lower_bound=0.0)
flags.DEFINE_integer("max_bytes", 10_000_000, "Largest request body accepted.", lower_bound=1)
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import uvicorn

    from research.serve import predict, server

    f = flags.FLAGS
    common.run_or_exit(check_address, f.host, f.port)
    signature, reader, run = common.run_or_exit(predict.predictor, f.workdir, f.backend, f.checkpoint,
                                                f.quantized)
    served = server.make_app(signature, reader, run, max_batch=f.max_batch, batch_wait_ms=f.batch_wait_ms,
                             max_bytes=f.max_bytes)
    logging.info("serving %s (%s%s, %s, step %s) on http://%s:%d", f.workdir, signature["backend"],
                 f" int8 {signature['quantized']}" if signature["quantized"] else "", signature["chosen"],
                 signature["step"], f.host, f.port)
    uvicorn.run(served, host=f.host, port=f.port, log_level="warning")


def check_address(host: str, port: int) -> None:
    """Refuses an address this machine cannot listen on, naming the flags, before the model is
    loaded (uvicorn would say it in its own words after). Written here: uvicorn has no such check."""
    try:
        with socket.create_server((host, port)):
            pass
    except (OSError, OverflowError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise UserError(f"cannot listen on {host}:{port} (--host, --port): {reason}") from e


if __name__ == "__main__":
    app.run(main, flags_parser=common.parse_flags)
