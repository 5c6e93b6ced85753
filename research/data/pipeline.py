"""Input pipelines over in-memory splits: a seeded, checkpointable train stream and a padded,
masked evaluation pass."""

from collections.abc import Iterator

import grain
import jax
import numpy as np

from research.errors import UserError


def _local_rows(global_batch_size: int) -> slice:
    """This process's rows of a global batch (all of them on one host)."""
    processes = jax.process_count()
    if global_batch_size % processes:
        raise UserError(
            f"batch size {global_batch_size} is not divisible by the {processes} processes")
    per_process = global_batch_size // processes
    start = jax.process_index() * per_process
    return slice(start, start + per_process)


def train_batches(arrays: dict[str, np.ndarray], *, batch_size: int, seed: int):
    """An endless Grain iterator of training batches.

    Epoch e is a permutation seeded by (seed, e); batches run across epoch boundaries, so no
    example is dropped. Grain shuffles and batches indices only, and the batch is gathered from
    the arrays in one vectorised read. The iterator's get_state/set_state make it part of the
    checkpoint.
    """
    num_examples = len(arrays["label"])
    rows = _local_rows(batch_size)

    def gather(indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = indices[rows]
        return {name: values[indices] for name, values in arrays.items()}

    dataset = (
        grain.MapDataset.range(num_examples)
        .shuffle(seed=seed)
        .repeat()
        .batch(batch_size)
        .map(gather)
    )
    return iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=8)))


def eval_batches(arrays: dict[str, np.ndarray], *, batch_size: int) -> Iterator[dict]:
    """Every example exactly once, in order; the last batch is padded and `mask` marks real rows.

    Written here because Grain's batching either drops or shortens the last batch, and a short
    batch would recompile the jitted eval step.
    """
    num_examples = len(arrays["label"])
    rows = _local_rows(batch_size)
    for start in range(0, num_examples, batch_size):
        stop = min(start + batch_size, num_examples)
        pad = batch_size - (stop - start)
        batch = {
            name: np.concatenate([values[start:stop], np.zeros((pad, *values.shape[1:]), values.dtype)])
            for name, values in arrays.items()
        }
        batch["mask"] = np.arange(batch_size) < stop - start
        yield {name: values[rows] for name, values in batch.items()}
