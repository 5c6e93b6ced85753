"""Datasets by name: prepared through TFDS as array_record, then held in memory.

The datasets used here fit in memory many times over, and decoding records one at a time
runs far slower than the train step consumes them, so each split is read once with
`tfds.data_source` and kept as numpy arrays; the pipeline shuffles and batches indices.
"""

import contextlib
import dataclasses
import fcntl
import os

import numpy as np

from research.errors import UserError

_READ_CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class Split:
    """One split in memory: {"image": uint8 [N,H,W,C], "label": int32 [N]}."""

    arrays: dict[str, np.ndarray]
    num_classes: int
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.arrays["label"])


def _fashion_mnist_builder(data_config, data_dir):
    from research.data.fashion_mnist_idx import FashionMnistIdx
    from research.data.fashion_mnist_idx import builder as idx_builder

    idx_dir = data_config.idx_dir or idx_builder.DEFAULT_IDX_DIR
    have_local = not idx_builder.missing_files(idx_dir)
    if data_config.source == "local" or (data_config.source == "auto" and have_local):
        return FashionMnistIdx(idx_dir=idx_dir, data_dir=data_dir, file_format="array_record")
    return _catalog_builder("fashion_mnist", data_dir, hint=(
        f"no Fashion-MNIST IDX files in {idx_dir}; install them with 'apt-get install "
        "dataset-fashion-mnist' (as root) or pass --config.data.idx_dir=DIR"))


def _digits_builder(data_config, data_dir):
    del data_config
    from research.data.digits import Digits

    return Digits(data_dir=data_dir, file_format="array_record")


def _catalog_builder(name, data_dir, hint):
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    builder.hint = hint
    return builder


@contextlib.contextmanager
def _exclusive(lock_path: str):
    """Holds an exclusive lock on `lock_path` (made if missing) across processes."""
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_BUILDERS = {"fashion_mnist": _fashion_mnist_builder, "digits": _digits_builder}


def prepared_builder(data_config):
    """The TFDS builder of `data_config.name`, prepared on disk (the first call writes it)."""
    if data_config.name not in _BUILDERS:
        raise UserError(
            f"unknown dataset {data_config.name!r}; choose one of {sorted(_BUILDERS)} "
            "with --config.data.name")
    if data_config.source not in ("auto", "local", "catalog"):
        raise UserError(
            f"unknown data.source {data_config.source!r}; use auto, local or catalog")
    data_dir = os.path.expanduser(data_config.tfds_dir) if data_config.tfds_dir else None
    make_builder = lambda: _BUILDERS[data_config.name](data_config, data_dir)  # noqa: E731
    builder = make_builder()
    try:
        # Parallel runs prepare it once; a builder reads what is on disk when made, so the
        # one used is made inside the lock.
        with _exclusive(builder.data_dir + ".lock"):
            builder = make_builder()
            builder.download_and_prepare()
    except FileNotFoundError as e:
        raise UserError(str(e)) from e
    except Exception as e:  # The catalog route fails in many ways without a network.
        hint = getattr(builder, "hint", None)
        if hint is None:
            raise
        raise UserError(
            f"dataset {data_config.name!r} could not be downloaded through TFDS "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); {hint}") from e
    return builder


def load_split(data_config, split: str) -> Split:
    """Reads one split of the configured dataset into memory."""
    builder = prepared_builder(data_config)
    if split not in builder.info.splits:
        raise UserError(
            f"dataset {data_config.name!r} has no split {split!r}; "
            f"it has {sorted(builder.info.splits)}")
    source = builder.as_data_source(split=split)
    examples = []
    for start in range(0, len(source), _READ_CHUNK):
        examples.extend(source.__getitems__(range(start, min(start + _READ_CHUNK, len(source)))))
    label_feature = builder.info.features["label"]
    return Split(
        arrays={
            "image": np.stack([e["image"] for e in examples]).astype(np.uint8),
            "label": np.asarray([e["label"] for e in examples], dtype=np.int32),
        },
        num_classes=label_feature.num_classes,
        class_names=tuple(label_feature.names),
    )
