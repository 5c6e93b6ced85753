"""experiments.export and experiments.predict on a digits run: files in, one JSON line each,
the same from the checkpoint and from the export; bad input is one error line."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from research.errors import UserError
from research.serve import export, predict
from tests.conftest import run_program


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
