"""A split's columns read from disk on demand: what the pipeline gathers batches from when a
split is streamed (`data.in_memory`) instead of held as numpy arrays.

Both kinds read rows by index, as an in-memory array does, so the pipeline's order of
examples, and so every number of a run, is the same whether a split is streamed or not:

- `Records`: the prepared array_record files through TFDS's data source (Grain's
  ArrayRecordDataSource), each row decoded when a batch asks for it. Images, signals, labels
  and raw texts.
- `MappedArray`: an array's bytes in a file, memory-mapped. Token ids of text datasets,
  written once by `text.windows_on_disk` / `text.examples_on_disk`.

Both pickle by path, so Grain's worker processes (`data.workers`) reopen them instead of
receiving a copy of the data.
"""

import dataclasses
import hashlib
from collections.abc import Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class Column:
    """The shape (rows first) and dtype of a column not held in memory."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def __len__(self) -> int:
        return self.shape[0]


class Records(Mapping):
    """A split's prepared records; `self[name]` is that feature's `Column`, `take(indices)`
    decodes those rows of every feature."""

    def __init__(self, builder, split: str, skipped: tuple[str, ...] = ()):
        from research.data import sources

        self._builder, self._split = builder, split
        self._features = {name: feature for name, feature in builder.info.features.items()
                          if name not in skipped}
        count = builder.info.splits[split].num_examples
        self._columns = {name: Column((count, *_shape(feature)), sources.feature_dtype(feature))
                         for name, feature in self._features.items()}
        self._source = None

    @property
    def split(self) -> str:
        return self._split

    @property
    def directory(self) -> str:
        """Where the prepared files are: files derived from them are kept beside them."""
        return self._builder.data_dir

    @property
    def fingerprint(self) -> str:
        """Names this split's prepared files as they are now (paths, sizes, modification times)."""
        from research.data import sources

        paths = self._builder.info.splits[self._split].filepaths
        return hashlib.sha256(sources.fingerprint(paths).encode()).hexdigest()[:12]

    def __getitem__(self, name: str) -> Column:
        return self._columns[name]

    def __iter__(self):
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def take(self, indices) -> dict[str, np.ndarray]:
        """Rows `indices` of every feature, decoded, in the order given."""
        from research.data import sources

        if self._source is None:
            self._source = self._builder.as_data_source(split=self._split)
        examples = self._source.__getitems__([int(i) for i in indices])
        return {name: sources.column(feature, [e[name] for e in examples])
                for name, feature in self._features.items()}

    def __getstate__(self):  # Workers open their own source.
        return {**self.__dict__, "_source": None}


class MappedArray:
    """A file of one array's raw bytes (row-major), read-only: `self[rows]` reads those rows."""

    def __init__(self, path: str, dtype, shape: tuple[int, ...]):
        self.path, self.dtype, self.shape = path, np.dtype(dtype), tuple(shape)
        self._array = np.memmap(path, dtype=self.dtype, mode="r", shape=self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        return np.asarray(self._array[rows])

    def __reduce__(self):
        return MappedArray, (self.path, self.dtype, self.shape)


def take(arrays: Mapping, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Rows `indices` of every column, as arrays: from memory, a memory map or records."""
    if isinstance(arrays, Records):
        return arrays.take(indices)
    return {name: np.asarray(values[indices]) for name, values in arrays.items()}


def _shape(feature) -> tuple[int, ...]:
    shape = getattr(feature, "shape", ())
    return tuple(shape) if shape is not None else ()
