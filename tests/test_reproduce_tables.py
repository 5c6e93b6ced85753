"""scripts/reproduce_tables.py's compression table, summarised from runs laid out as the script
and the programs it starts leave them (it reads files only, so the runs here are written by
hand: results, a row's wall time, an export's signature and files, a PTQ's results)."""

import json
import subprocess
import sys
import zlib

from tests.conftest import ROOT


def write_json(path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def summarize(runs_dir, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/reproduce_tables.py", "--table=compression",
                           f"--runs_dir={runs_dir}", *flags], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_the_compression_table_reads_accuracies_exports_and_quantized_runs(tmp_path):
    teacher = tmp_path / "compression" / "teacher"
    for seed, accuracy in enumerate((0.90, 0.91, 0.92)):
        write_json(teacher / f"seed={seed}" / "results.json", {"eval/test/accuracy": accuracy})
        write_json(teacher / f"seed={seed}" / "quantized" / "w8a8.json",
                   {"quantized": {"eval/test/accuracy": accuracy - 0.01}})
    write_json(teacher / "row.json", {"wall_time_s": 90.0})
    export = teacher / "seed=0" / "export"
    onnx_bytes = bytes(1000) + b"weights" * 100  # Zeros compress: the zlib column shows it.
    export.mkdir(parents=True)
    (export / "model.onnx").write_bytes(onnx_bytes[:500])
    (export / "model.onnx.data").write_bytes(onnx_bytes[500:])
    write_json(export / "signature.json", {
        "parameters": {"total": 400, "nonzero": 100},
        "formats": {"onnx": {"file": "model.onnx", "bytes": len(onnx_bytes), "test_accuracy": 0.9012,
                             "latency_s": {"1": 0.0002, "256": 0.0512}},
                    "stablehlo": {"file": "model.stablehlo", "bytes": 1234}}})
    write_json(export / "served.json", {"requests_per_s": 512.3, "p50_ms": 48.04, "failed": 0})

    done = summarize(tmp_path, "--summarize_only")
    assert done.returncode == 0, done.stderr[-2000:]
    table = (tmp_path / "compression.md").read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| ---")}
    teacher_row = rows["Teacher: BN CNN conv32-conv64-dense128, 5 epochs"]
    assert teacher_row[1:10] == [
        "91.0 ± 1.0% (90.00, 91.00, 92.00)", "100 of 400", f"{len(onnx_bytes):,}",
        f"{len(zlib.compress(onnx_bytes, 9)):,}", "0.200 ms / 200.0 us", "90.12%", "1,234", "-",
        "512 / 48.0 ms"]
    assert teacher_row[10:12] == ["3", "1.5 min"]
    ptq = next(cells for label, cells in rows.items() if label.startswith("Teacher, int8 post-training "
                                                                          "quantization (w8a8:"))
    assert ptq[1] == "90.0 ± 1.0% (89.00, 90.00, 91.00)" and ptq[2] == "-"  # Not exported yet.
    assert rows["Student CNN conv8-conv16-dense32 from scratch, 10 epochs"][1] == "not run"
    summary = json.loads((tmp_path / "compression.json").read_text())
    assert summary["teacher"]["onnx"]["zlib_bytes"] == len(zlib.compress(onnx_bytes, 9))

    # A row that needs another row's runs is refused before anything starts.
    done = summarize(tmp_path, "--rows=bbc_lm_distilled")
    assert done.returncode != 0 and "row bbc_lm_distilled needs row bbc_lm_teacher" in done.stderr
    assert not (tmp_path / "compression" / "bbc_lm_distilled").exists()
    assert "error: table compression has no rows ['nope']" in summarize(tmp_path, "--rows=nope").stderr
