"""The W&B mirror, offline: what W&B's own files hold is what metrics.jsonl and results.json
hold, and a resumed run continues the same W&B run."""

import glob
import json
import os
import subprocess
import sys

from research.train import loop, metric_writer
from tests.conftest import StopAfterCalls


def wandb_records(run_dir: str) -> list[dict]:
    """The records of one offline W&B run, read by W&B's own reader of its .wandb log."""
    (log,) = glob.glob(os.path.join(run_dir, "run-*.wandb"))
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", log],
                         capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_an_offline_wandb_run_holds_the_metrics_and_continues_on_resume(digits_config, tmp_path,
                                                                        monkeypatch):
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    workdir = str(tmp_path / "run")
    digits_config.train.update(steps=60, log_every=10, checkpoint_every=20, eval_every=20)
    digits_config.log.update(wandb_project="research-tests", wandb_mode="auto")  # No key: offline.
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", lambda **_: StopAfterCalls(30))  # Rows of 30 are rewritten.
        assert loop.train_and_evaluate(digits_config, workdir)["step"] == 30
    results = loop.train_and_evaluate(digits_config, workdir)

    run_dirs = sorted(glob.glob(os.path.join(workdir, "wandb", "offline-run-*")))
    assert len(run_dirs) == 2  # One a session, both the same W&B run.
    first, resumed = map(wandb_records, run_dirs)
    run_id = open(os.path.join(workdir, "wandb_id")).read().strip()
    for records in (first, resumed):
        (run,) = [r["run"] for r in records if r["type"] == "run"]
        assert run["run_id"] == run_id and run["project"] == "research-tests"
        config = run["config"]["update"]
        assert config["opt"]["lr"] == digits_config.opt.lr and config["train"]["steps"] == 60

    logged = {}  # Step -> metrics, the resumed session's rows replacing the stopped one's.
    for record in first + resumed:
        if record["type"] == "history":
            item = record["history"]["item"]
            logged.setdefault(item["step"], {}).update(
                {k: v for k, v in item.items() if not k.startswith(("_", "plots/")) and k != "step"})
    expected = {}
    for row in metric_writer.read_metrics(workdir):
        expected.setdefault(row["step"], {}).update({k: v for k, v in row.items() if k != "step"})
    assert sorted(logged) == sorted(expected) == [10, 20, 30, 40, 50, 60]
    for step, row in expected.items():
        assert logged[step].keys() == row.keys(), step
        assert logged[step] == row, step

    (plots,) = [r["history"]["item"] for r in resumed
                if r["type"] == "history" and "plots/learning_curves.path" in r["history"]["item"]]
    assert plots["step"] == 60
    assert os.path.getsize(os.path.join(run_dirs[1], "files", plots["plots/learning_curves.path"])) > 0
    summary = {}
    for record in resumed:
        if record["type"] == "summary":
            summary.update(record["summary"].get("update", {}))
    assert summary["eval/test/accuracy"] == results["eval/test/accuracy"]
