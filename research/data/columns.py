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
import os
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
        self._builder, self._split = builder, split
        self._features = {name: feature for name, feature in builder.info.features.items()
                          if name not in skipped}
        count = builder.info.splits[split].num_examples
        self._columns = {name: Column((count, *_shape(feature)), feature_dtype(feature))
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
        paths = self._builder.info.splits[self._split].filepaths
        return hashlib.sha256(fingerprint(paths).encode()).hexdigest()[:12]

    def __getitem__(self, name: str) -> Column:
        return self._columns[name]

    def __iter__(self):
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def take(self, indices) -> dict[str, np.ndarray]:
        """Rows `indices` of every feature, decoded, in the order given."""
        if self._source is None:
            self._source = self._builder.as_data_source(split=self._split)
        examples = self._source.__getitems__([int(i) for i in indices])
        return {name: column(feature, [e[name] for e in examples])
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


def column(feature, values: list) -> np.ndarray:
    """One feature's values as an array: labels int32, images uint8, strings `str`."""
    dtype = feature_dtype(feature)
    if dtype.kind == "O":  # TFDS hands strings back as UTF-8 bytes.
        array = np.empty(len(values), dtype=object)
        array[:] = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
        return array
    return np.stack(values).astype(dtype) if len(values) else np.zeros((0, *feature.shape), dtype)


def feature_dtype(feature) -> np.dtype:
    """The dtype a feature's column has here."""
    import tensorflow_datasets as tfds

    if isinstance(feature, tfds.features.ClassLabel):
        return np.dtype(np.int32)
    if isinstance(feature, tfds.features.Image):
        return np.dtype(np.uint8)
    if np.dtype(feature.np_dtype).kind in "OSU":
        return np.dtype(object)
    return np.dtype(feature.np_dtype)


def fingerprint(paths) -> str:
    """The names, sizes and modification times of `paths`: changes when any file does."""
    stats = [(os.fspath(path), os.stat(path)) for path in paths]
    return ";".join(f"{os.path.basename(p)}:{s.st_size}:{s.st_mtime_ns}" for p, s in sorted(stats))


def _shape(feature) -> tuple[int, ...]:
    shape = getattr(feature, "shape", ())
    return tuple(shape) if shape is not None else ()
