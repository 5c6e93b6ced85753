import json
import os

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from research.errors import error_line
from research.train import loop, metric_writer
from tests.conftest import StopAfterCalls


def test_tensorboard_shows_every_logged_step_across_a_resume(digits_config, tmp_path, monkeypatch):
    """Stopped right after the checkpoint of a logged step, with a later row written as a killed
    process would have, then resumed: TensorBoard's own reader sees each step metrics.jsonl
    has, the resume point included, once, with the resumed run's values."""
    workdir = str(tmp_path / "run")
    digits_config.train.update(steps=60, log_every=10, checkpoint_every=20)
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", lambda **_: StopAfterCalls(20))
        assert loop.train_and_evaluate(digits_config, workdir)["step"] == 20
    orphan = metric_writer.MetricWriter(workdir, 20)
    orphan.write(30, {"train/loss": 123.0})
    orphan.close()
    loop.train_and_evaluate(digits_config, workdir)
    logged = [row["step"] for row in map(json.loads, open(os.path.join(workdir, "metrics.jsonl")))
              if "train/loss" in row]
    events = EventAccumulator(workdir)
    events.Reload()
    assert logged == [10, 20, 30, 40, 50, 60]
    assert [event.step for event in events.Scalars("train/loss")] == logged
    assert 123.0 not in [event.value for event in events.Scalars("train/loss")]


def test_a_row_cut_off_mid_write_is_dropped_on_resume(tmp_path):
    """A full disk or a kill can leave half a row at the end of metrics.jsonl; the resumed run
    drops it with the other rows past its checkpoint instead of failing to read the file."""
    workdir = str(tmp_path)
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.write('{"step": 10, "train/loss": 1.5}\n{"step": 20, "train/loss": 1.2}\n{"step": 30, "trai')
    writer = metric_writer.MetricWriter(workdir, 20)
    writer.write(30, {"train/loss": 1.0})
    writer.close()
    assert metric_writer.read_metrics(workdir) == [
        {"step": 10, "train/loss": 1.5}, {"step": 20, "train/loss": 1.2}, {"step": 30, "train/loss": 1.0}]


def test_the_error_line_starts_a_line_of_its_own_while_a_progress_bar_is_open(capsys):
    assert error_line("boom") == "error: boom\n"
    with metric_writer.progress_bar(100, 0) as bar:
        bar.update(40)  # Drawn on stderr, its line not ended.
        assert error_line("boom") == "\nerror: boom\n"
    assert error_line("boom") == "error: boom\n"
