"""scripts/device_check.sh, the check run on a lent accelerator, in its CPU smoke mode: every step
(devices, benchmarks, Shakespeare, the language model's memory, train-export-serve) runs at toy
sizes and the report says so, so the script cannot rot between the sessions that have a GPU."""

import os
import subprocess

from tests.conftest import ROOT


def test_the_device_check_runs_every_step_in_cpu_smoke_mode(tmp_path, tfds_dir):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "DEVICE_CHECK_TFDS_DIR": tfds_dir}  # The suite's prepared data.
    done = subprocess.run(["scripts/device_check.sh", "--cpu_smoke"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    report = (out / "device_check.md").read_text()
    assert done.returncode == 0, report[-4000:] + done.stderr[-2000:]
    assert report.endswith("0 step(s) failed\n")
    titles = ("devices", "benchmarks", "shakespeare_char", "language model memory", "export", "load test")
    for title in titles:
        assert f"## {title}\n" in report
    assert "allocator peak GB: not reported by this backend" in report  # CPU: no allocator figures.
    assert "throughput:" in report and "(0 failed)" in report
    assert "| lm:size=tiny |" in (out / "bench.md").read_text()
