"""Input pipelines over a split's columns (in memory or on disk): a seeded, checkpointable
train stream and a padded, masked evaluation pass."""

import sys
from collections.abc import Iterator

import grain
import numpy as np
from absl import flags

from research.data import columns
from research.platform import signals


class EpochPermutations:
    """Example index at any position of an endless stream of epochs, epoch e a permutation
    seeded by (seed, e). Vectorised with numpy: Grain's element-wise shuffle-then-batch costs
    about 11 microseconds an example in Python, a seventh of what the MLP's train step needs."""

    def __init__(self, num_examples: int, seed: int):
        self.num_examples, self.seed = num_examples, seed
        self._cache = {}

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            if len(self._cache) > 2:  # Batches span at most two epochs: keep a few.
                self._cache.pop(min(self._cache))
            self._cache[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
        return self._cache[epoch]

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        epochs, offsets = np.divmod(positions, self.num_examples)
        indices = np.empty_like(positions)
        for epoch in np.unique(epochs):
            where = epochs == epoch
            indices[where] = self._permutation(int(epoch))[offsets[where]]
        return indices


def train_batches(arrays, *, batch_size: int, seed: int, augment=None, rows: slice | None = None,
                  workers: int = 0) -> "Batches":
    """An endless iterator of training batches: of each global batch of `batch_size`, the
    `rows` this process feeds to the devices (sharding.process_rows; all of them by default).

    Batch b holds stream positions [b * batch_size, (b + 1) * batch_size) of EpochPermutations,
    so batches run across epoch boundaries and no example is dropped. `augment` (from
    `augment.parse`) transforms the whole batch b with a generator seeded by (seed, b) before
    the rows are taken, so the images a run trains on do not depend on its number of processes
    (with augmentation, each process reads the whole batch; without, only its rows).
    `arrays` are in memory or on disk (research.data.columns); the batches are the same.
    """
    permutations = EpochPermutations(arrays["label"].shape[0], seed)
    rows = slice(None) if rows is None else rows

    def gather(batch_number: int) -> dict[str, np.ndarray]:
        positions = np.arange(batch_number * batch_size, (batch_number + 1) * batch_size)
        if augment is None:
            return columns.take(arrays, permutations(positions[rows]))
        batch = augment(columns.take(arrays, permutations(positions)),
                        np.random.default_rng([seed, batch_number]))
        return {name: values[rows] for name, values in batch.items()}

    return Batches(gather, workers)


class Batches(grain.DatasetIterator):
    """Batch b = gather(b) for b = 0, 1, ...: a Grain MapDataset over batch numbers, prefetched
    in a thread, or made by `workers` processes (Grain's mp_prefetch) when gathering costs more
    than a step (batches decoded from disk). Its state, the next batch number, is a checkpoint
    item (Grain's handler) and does not depend on `workers`: a run resumes with any number."""

    def __init__(self, gather, workers: int = 0):
        super().__init__()
        self._gather, self._workers = gather, workers
        self._next, self._iterator = 0, None

    def __next__(self) -> dict[str, np.ndarray]:
        if self._iterator is None:  # Started on first use, from the restored position.
            dataset = grain.MapDataset.range(self._next, sys.maxsize).map(self._gather).to_iter_dataset(
                grain.ReadOptions(num_threads=1, prefetch_buffer_size=8))
            if self._workers:
                if not flags.FLAGS.is_parsed():
                    # Grain's worker start reads its absl flags; outside an absl program (a
                    # notebook, pytest) they take their defaults.
                    flags.FLAGS.mark_as_parsed()
                dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=self._workers),
                                              worker_init_fn=_end_with_parent)
            self._iterator = iter(dataset)
        batch = next(self._iterator)
        self._next += 1
        return batch

    def get_state(self) -> dict:
        return {"next_index": self._next}

    def set_state(self, state: dict) -> None:
        self.close()
        self._next = int(state["next_index"])

    def close(self) -> None:
        """Stops the prefetching thread or worker processes (freeing the shared memory of the
        batches they made); the next `next` starts them again."""
        if self._iterator is not None:
            self._iterator.close()
            self._iterator = None


def _end_with_parent(worker_index: int, worker_count: int) -> None:
    """In each Grain worker: end when the training process does, even by SIGKILL, instead of
    living on (holding memory and the run's output pipes) after it."""
    del worker_index, worker_count
    signals.terminate_with_parent()


def stack(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Batches stacked along a new leading axis, the input of a multi-step train call."""
    return {name: np.stack([batch[name] for batch in batches]) for name in batches[0]}


def eval_batches(arrays: dict[str, np.ndarray], *, batch_size: int,
                 rows: slice | None = None) -> Iterator[dict]:
    """Every example exactly once, in order; the last batch is padded and `mask` marks real rows.
    Of each batch, the `rows` this process feeds (all by default): the processes of a run
    together cover every example once.

    Written here because Grain's batching either drops or shortens the last batch, and a short
    batch would recompile the jitted eval step.
    """
    num_examples = arrays["label"].shape[0]
    rows = slice(None) if rows is None else rows
    for start in range(0, num_examples, batch_size):
        stop = min(start + batch_size, num_examples)
        pad = batch_size - (stop - start)
        batch = {name: np.concatenate([values, np.zeros((pad, *values.shape[1:]), values.dtype)])
                 for name, values in columns.take(arrays, np.arange(start, stop)).items()}
        batch["mask"] = np.arange(batch_size) < stop - start
        yield {name: values[rows] for name, values in batch.items()}
