"""experiments.export, experiments.predict and experiments.serve on one digits run: files in,
one JSON line each, the same from the checkpoint and from the exports; bad input is one error
line. The server is tested through a real HTTP client on localhost: right answers, requests
that arrive together answered as one batch, a 4xx with a message for each kind of bad request,
and still serving afterwards; scripts/load_test.py measures it."""

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from research import export
from research.errors import UserError
from research.export import formats
from research.run import checkpoint
from research.serve import predict
from tests.conftest import ROOT, run_program


def test_predict_reads_images_arrays_and_directories_from_checkpoint_and_export(digits_run, tmp_path):
    predictor = export.load(digits_run)
    rows = export.test_batch(predictor, rows=3)["image"]  # uint8 [3, 8, 8, 1]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    Image.fromarray(rows[0, :, :, 0]).save(inputs / "a.png")
    np.save(inputs / "b.npy", rows[1])
    np.save(inputs / "c.npy", rows[2, :, :, 0])  # Without its channel axis.
    (inputs / "notes.md").write_text("not an input")  # A directory's other files are passed over.
    expected = predictor.probabilities({"image": rows})

    from_checkpoint = predict.predict(digits_run, [str(inputs)], backend="jax")
    assert [r["input"] for r in from_checkpoint] == [str(inputs / n) for n in ("a.png", "b.npy", "c.npy")]
    np.testing.assert_allclose([r["probabilities"] for r in from_checkpoint], expected, atol=1e-6)
    assert [r["class"] for r in from_checkpoint] == list(expected.argmax(-1))
    assert all(r["name"] == predictor.signature["class_names"][r["class"]] for r in from_checkpoint)

    done = run_program("experiments.export", f"--workdir={digits_run}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "max |difference| to JAX" in done.stdout
    for backend in ("stablehlo", "onnx"):
        done = run_program("experiments.predict", f"--workdir={digits_run}", f"--input={inputs}/a.png",
                           f"--input={inputs}/b.npy", f"--input={inputs}/c.npy", f"--backend={backend}")
        assert done.returncode == 0, done.stderr[-2000:]
        from_export = [json.loads(line) for line in done.stdout.splitlines()]
        assert [r["class"] for r in from_export] == [r["class"] for r in from_checkpoint]
        np.testing.assert_allclose([r["probabilities"] for r in from_export],
                                   [r["probabilities"] for r in from_checkpoint], atol=2e-6)


def test_bad_inputs_are_one_error_line(digits_run, tmp_path):
    (tmp_path / "broken.png").write_text("not an image")
    np.save(tmp_path / "wide.npy", np.zeros((9, 9), np.uint8))
    (tmp_path / "notes.txt").write_text("a text, to an image model")
    for path, message in ((tmp_path / "broken.png", "is not an image PIL can read"),
                          (tmp_path / "wide.npy", r"has shape \(9, 9\); the model takes \(8, 8, 1\)"),
                          (tmp_path / "notes.txt", "this model reads PNG/JPEG images or .npy arrays"),
                          (tmp_path / "missing.png", "does not exist")):
        with pytest.raises(UserError, match=message):
            predict.predict(digits_run, [str(path)])
    done = run_program("experiments.predict", f"--workdir={digits_run}", f"--input={tmp_path}/wide.npy")
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith("error: ")
    no_export = str(tmp_path / "copy")
    shutil.copytree(digits_run, no_export, ignore=shutil.ignore_patterns("export"))
    with pytest.raises(UserError, match="has no signature.json; write it with experiments.export"):
        predict.predict(no_export, [str(tmp_path / "wide.npy")], backend="stablehlo")


@pytest.mark.parametrize("name,backend", [("model.stablehlo", "stablehlo"), ("model.onnx", "onnx"),
                                          ("signature.json", "onnx")])
def test_a_damaged_export_file_is_named_in_one_error(digits_run, tmp_path, name, backend):
    copy = str(tmp_path / "copy")
    shutil.copytree(digits_run, copy)
    if not os.path.isdir(os.path.join(copy, "export")):
        export.export_workdir(copy)
    path = os.path.join(copy, "export", name)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 3])  # Cut short, as a failed copy leaves it.
    np.save(tmp_path / "row.npy", np.zeros((8, 8, 1), np.uint8))
    with pytest.raises(UserError, match=f"{path} (cannot be read|is not JSON).*write it again") as raised:
        predict.predict(copy, [str(tmp_path / "row.npy")], backend=backend)
    assert "\n" not in str(raised.value)


def test_auto_takes_the_fastest_export_of_the_checkpoint_asked_for(digits_run, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(digits_run, run, ignore=shutil.ignore_patterns("export*"))
    best = checkpoint.resolve(run, "best")
    other = next(step for step in (20, 40, 60) if step != best)  # digits_run saves every 20 steps.

    def exported(mode: str, names: list[str], step: int = best, latency: dict | None = None) -> None:
        directory = formats.export_dir(run, mode)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "signature.json"), "w") as f:
            json.dump({"step": step, "formats": {name: {"latency_s": {"1": latency[name]}} if latency else {}
                                                 for name in names}}, f)

    assert predict.fastest(run) == ("jax", "")
    exported("", ["stablehlo"], step=other)  # Of a checkpoint not asked for: passed over.
    assert predict.fastest(run) == ("jax", "")
    assert predict.fastest(run, checkpoint_name=str(other)) == ("stablehlo", "")
    exported("", ["stablehlo"])
    assert predict.fastest(run) == ("stablehlo", "")
    exported("", ["stablehlo", "onnx"])
    assert predict.fastest(run) == ("onnx", "")
    exported("w8a8", ["stablehlo", "onnx"])  # int8 with per-call scales: slower, served when asked.
    assert predict.fastest(run) == ("onnx", "")
    assert predict.fastest(run, quantized="w8a8") == ("onnx", "w8a8")
    exported("w8a8_static", ["stablehlo"])
    assert predict.fastest(run) == ("onnx", "")
    assert predict.fastest(run, quantized="w8a8_static") == ("stablehlo", "w8a8_static")
    exported("w8a8_static", ["stablehlo", "onnx"])
    assert predict.fastest(run) == ("onnx", "w8a8_static")
    # Measured, the fastest for one request wins (a small model's float ONNX over its int8) ...
    exported("", ["stablehlo", "onnx"], latency={"stablehlo": 3e-4, "onnx": 6.5e-5})
    exported("w8a8_static", ["stablehlo", "onnx"], latency={"stablehlo": 5e-4, "onnx": 6.9e-5})
    assert predict.fastest(run) == ("onnx", "")
    exported("w8a8_static", ["stablehlo", "onnx"], latency={"stablehlo": 5e-4, "onnx": 6.0e-5})
    assert predict.fastest(run) == ("onnx", "w8a8_static")
    # ... where every candidate was measured; one unmeasured export puts the order back.
    exported("", ["stablehlo", "onnx"])
    exported("w8a8_static", ["stablehlo", "onnx"], latency={"stablehlo": 5e-4, "onnx": 9e-5})
    assert predict.fastest(run) == ("onnx", "w8a8_static")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


@pytest.fixture(scope="module")
def server(digits_run):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "experiments.serve", f"--workdir={digits_run}", f"--port={port}",
         "--max_batch=8", "--batch_wait_ms=300", "--max_bytes=20000"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                assert json.load(response) == {"status": "ok"}
                break
        except (urllib.error.URLError, ConnectionError):
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.3)
    yield url
    process.terminate()
    process.communicate(timeout=30)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_server_answers_batches_refuses_bad_requests_and_keeps_serving(server, digits_run, tmp_path):
    predictor = export.load(digits_run)
    rows = export.test_batch(predictor, rows=8)["image"]
    expected = predictor.probabilities({"image": rows})
    with urllib.request.urlopen(f"{server}/metadata", timeout=10) as response:
        metadata = json.load(response)
    assert metadata["inputs"] == [{"name": "image", "dtype": "uint8", "shape": [None, 8, 8, 1]}]
    assert metadata["class_names"] == [str(k) for k in range(10)]
    # Served from the fastest export of the best checkpoint (the first test wrote them).
    served = (metadata["backend"], metadata["quantized"], metadata["chosen"])
    assert served == (*predict.fastest(digits_run), "auto")

    status, answer = post(f"{server}/predict", png(rows[0, :, :, 0]), "image/png")
    assert status == 200 and answer["class"] == int(expected[0].argmax())
    np.testing.assert_allclose(answer["probabilities"], expected[0], atol=export.TOLERANCE)

    # Eight requests at once, within the server's 300 ms window: answered together.
    bodies = [json.dumps({"array": row.tolist()}).encode() for row in rows]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda body: post(f"{server}/predict", body, "application/json"), bodies))
    assert all(status == 200 for status, _ in answers)
    assert max(answer["batch_size"] for _, answer in answers) > 1
    assert [answer["class"] for _, answer in answers] == list(expected.argmax(-1))
    np.testing.assert_allclose([answer["probabilities"] for _, answer in answers], expected,
                               atol=export.TOLERANCE)

    npy = io.BytesIO()
    np.save(npy, rows[1])
    bad = [(b"not an image", "image/png", 422, "not an image PIL can read"),
           (json.dumps({"array": [[1, 2], [3, 4]]}).encode(), "application/json", 422,
            r"shape \(2, 2\); the model takes \(8, 8, 1\)"),
           (b"{not json", "application/json", 422, "not JSON"),
           (json.dumps({"text": "a text"}).encode(), "application/json", 422, "does not read text"),
           (b"x" * 30000, "application/x-npy", 413, "the limit is 20,000"),
           # Values, not just shapes: nothing is cast silently.
           (json.dumps({"array": np.full((8, 8), np.nan).tolist()}).encode(), "application/json", 422,
            "NaN or infinite"),
           (json.dumps({"array": np.full((8, 8), 300).tolist()}).encode(), "application/json", 422,
            "values from 300 to 300; the model reads uint8 values from 0 to 255"),
           (json.dumps({"array": np.full((8, 8), 0.5).tolist()}).encode(), "application/json", 422,
            "holds fractions"),
           (b'{"array": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "application/json", 422,
            "nested too deeply|not a rectangular array"),
           (npy.getvalue(), "video/mp4", 415, "unsupported Content-Type 'video/mp4'")]
    for body, content_type, want_status, message in bad:
        status, answer = post(f"{server}/predict", body, content_type)
        assert status == want_status, (content_type, answer)
        assert re.search(message, answer["detail"]), answer
    status, answer = post(f"{server}/predict", npy.getvalue(), "application/x-npy")  # Still serving.
    assert status == 200 and answer["class"] == int(expected[1].argmax())
    # The server and experiments.predict agree on a file.
    (tmp_path / "one.npy").write_bytes(npy.getvalue())
    assert predict.predict(digits_run, [str(tmp_path / "one.npy")])[0]["class"] == answer["class"]

    done = subprocess.run([sys.executable, "scripts/load_test.py", f"--url={server}", "--requests=32",
                           "--concurrency=8", f"--json={tmp_path}/load.json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "requests/s" in done.stdout and "p99" in done.stdout and "(0 failed)" in done.stdout
    figures = json.loads((tmp_path / "load.json").read_text())
    assert figures["failed"] == 0 and figures["requests_per_s"] > 0 and figures["p50_ms"] <= figures["p99_ms"]
