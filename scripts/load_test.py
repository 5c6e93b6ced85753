"""Sends concurrent requests to a running experiments.serve and prints throughput and latency.

  .venv/bin/python scripts/load_test.py --url=http://127.0.0.1:8000 --requests=1000 --concurrency=32 \
      [--input=shoe.png] [--json=figures.json]

Without --input each request is an all-zeros array of the model's input shape (JSON), read from
/metadata. Prints requests/s, latency p50/p90/p99 and the mean batch the server formed.
"""

import json
import mimetypes
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from absl import app, flags

flags.DEFINE_string("url", "http://127.0.0.1:8000", "The server.")
flags.DEFINE_integer("requests", 500, "Requests to send.")
flags.DEFINE_integer("concurrency", 32, "Requests in flight at once.")
flags.DEFINE_string("input", "", "A file to send (PNG/JPEG, .npy or .txt); default: zeros.")
flags.DEFINE_string("json", "", "Also write the figures to this JSON file.")
FLAGS = flags.FLAGS
TYPES = {".npy": "application/x-npy", ".txt": "text/plain"}


def payload() -> tuple[bytes, str]:
    if FLAGS.input:
        suffix = FLAGS.input[FLAGS.input.rfind("."):].lower()
        with open(FLAGS.input, "rb") as f:
            guessed = mimetypes.guess_type(FLAGS.input)[0]
            return f.read(), TYPES.get(suffix) or guessed or "application/octet-stream"
    with urllib.request.urlopen(f"{FLAGS.url}/metadata", timeout=30) as response:
        signature = json.load(response)
    if signature["kind"] == "tokens":
        return json.dumps({"text": "A short test text."}).encode(), "application/json"
    first = signature["inputs"][0]
    zeros = np.zeros(first["shape"][1:], first["dtype"])
    return json.dumps({"array": zeros.tolist()}).encode(), "application/json"


def main(argv):
    del argv
    body, content_type = payload()

    def one(_):
        request = urllib.request.Request(f"{FLAGS.url}/predict", data=body,
                                         headers={"Content-Type": content_type})
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = json.load(response)
            return time.perf_counter() - start, answer["batch_size"], None
        except (urllib.error.URLError, OSError) as e:
            return time.perf_counter() - start, 0, str(e)

    start = time.perf_counter()
    with ThreadPoolExecutor(FLAGS.concurrency) as pool:
        results = list(pool.map(one, range(FLAGS.requests)))
    wall = time.perf_counter() - start
    latencies_ms = np.array([seconds for seconds, _, error in results if error is None]) * 1000
    errors = [error for _, _, error in results if error is not None]
    batches = [size for _, size, error in results if error is None]
    print(f"requests: {FLAGS.requests} ({len(errors)} failed), concurrency {FLAGS.concurrency}, "
          f"wall {wall:.2f} s")
    figures = {"requests": FLAGS.requests, "failed": len(errors), "concurrency": FLAGS.concurrency,
               "wall_s": wall}
    if latencies_ms.size:
        p50, p90, p99 = np.percentile(latencies_ms, [50, 90, 99])
        print(f"throughput: {len(latencies_ms) / wall:,.1f} requests/s")
        print(f"latency: p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms")
        print(f"mean batch formed by the server: {np.mean(batches):.1f} requests")
        figures.update(requests_per_s=len(latencies_ms) / wall, p50_ms=p50, p90_ms=p90, p99_ms=p99,
                       mean_batch=float(np.mean(batches)))
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(figures, f, indent=1)
    if errors:
        print(f"first error: {errors[0]}")
        raise SystemExit(1)


if __name__ == "__main__":
    app.run(main)
