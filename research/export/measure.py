"""What an exported model is measured by: seconds a call in its own runtime on this machine, and
its accuracy over the run's whole evaluation split."""

import time

import numpy as np

from research.export.signature import input_names

LATENCY_BATCH_SIZES = (1, 256)


def latency(run, batch: dict, batch_sizes=LATENCY_BATCH_SIZES, seconds: float = 1.0) -> dict:
    """Seconds a call of `run` takes on the first rows of `batch` (repeated to fill a bigger
    batch), by batch size: the median of calls made for about `seconds` after two warm-ups."""
    measured = {}
    rows = len(next(iter(batch.values())))
    for size in batch_sizes:
        sized = {k: np.resize(v, (size, *v.shape[1:])) if size > rows else v[:size] for k, v in batch.items()}
        for _ in range(2):
            run(sized)
        times, start = [], time.perf_counter()
        while len(times) < 5 or time.perf_counter() - start < seconds:
            begin = time.perf_counter()
            run(sized)
            times.append(time.perf_counter() - begin)
        measured[str(size)] = float(np.median(times))
    return measured


def test_accuracy(run, model, rows: int = 1024) -> float:
    """The share of the run's evaluation split whose label is the top class of `run`'s
    probabilities (an exported `model` (model.Model), `rows` rows a call)."""
    arrays, names = model.exp.eval_data.arrays, input_names(model.signature)
    labels = np.asarray(arrays["label"][np.arange(len(arrays["label"]))])
    correct = 0
    for start in range(0, len(labels), rows):
        index = np.arange(start, min(start + rows, len(labels)))
        predicted = np.asarray(run({k: np.asarray(arrays[k][index]) for k in names})).argmax(-1)
        correct += int(np.sum(predicted == labels[index]))
    return correct / len(labels)
