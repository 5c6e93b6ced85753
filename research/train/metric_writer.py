"""Where metrics go: metrics.jsonl, TensorBoard event files and the console."""

import json
import os
import sys
import time

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tqdm import tqdm


def read_metrics(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    rows = [json.loads(line) for line in lines[:-1]]
    try:
        rows += [json.loads(line) for line in lines[-1:]]
    except json.JSONDecodeError:  # Half a row: its write was cut off (a full disk, a kill).
        pass
    return rows


class MetricWriter:
    """Appends {"step": …, name: value} rows to metrics.jsonl and TensorBoard.

    Opened at the step a run resumes from: rows past it, written by an interrupted process
    after its last checkpoint, are dropped from metrics.jsonl (the resumed run writes them
    again, with the same values) and TensorBoard is told to discard them too.
    """

    def __init__(self, workdir: str, start_step: int, mirror=None):
        self._mirror = mirror  # A wandb_log.Mirror: every row also goes to W&B.
        self._path = os.path.join(workdir, "metrics.jsonl")
        kept = [row for row in read_metrics(workdir) if row["step"] <= start_step]
        with open(self._path + ".tmp", "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in kept)
        os.replace(self._path + ".tmp", self._path)
        self._jsonl = open(self._path, "a")
        _after_earlier_event_files(workdir)
        # A START session log at step s makes TensorBoard's reader drop every point at step s
        # or later: at start_step + 1, it drops the orphaned points and keeps the row of the
        # step the run resumes from.
        self._events = EventFileWriter(workdir)
        self._events.add_event(event_pb2.Event(
            wall_time=time.time(), step=start_step + 1,
            session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        self._jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
        self._jsonl.flush()
        self._events.add_event(event_pb2.Event(
            wall_time=time.time(), step=step,
            summary=summary_pb2.Summary(value=[
                summary_pb2.Summary.Value(tag=name, simple_value=value)
                for name, value in scalars.items()])))
        if self._mirror is not None:
            self._mirror.log(step, scalars)

    def flush(self) -> None:
        self._events.flush()

    def close(self) -> None:
        self._jsonl.close()
        self._events.close()


def _after_earlier_event_files(workdir: str) -> None:
    """Waits, when needed, until the clock's second is past every event file's in `workdir`.
    TensorBoard reads a directory's event files in name order, and a name starts with its
    second, then host, pid and a per-process counter compared as text ("10" before "9"): a
    session started within the second of the last one could be read before it, and the older
    session's rows would replace the newer ones."""
    seconds = [int(name.split(".")[3]) for name in os.listdir(workdir)
               if name.startswith("events.out.tfevents.") and name.split(".")[3].isdigit()]
    while seconds and time.time() < max(seconds) + 1:
        time.sleep(0.05)


class NoWriter:
    """What a process of a run other than the first writes: nothing (the first writes the rows)."""

    def write(self, step: int, scalars: dict[str, float]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total_steps: int, start_step: int, shown: bool = True) -> tqdm:
    """Steps done, ETA and rate on the console; plain periodic lines when not on a terminal."""
    interactive = sys.stderr.isatty()
    return tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, disable=not shown,
                mininterval=0.5 if interactive else 30.0, file=sys.stderr, smoothing=0.1)
