"""A dataset's splits: prepared through TFDS as array_record, then held in memory or streamed.

Decoding records one at a time runs far slower than a small model's train step consumes them,
so a split that fits (`data.in_memory`, by default up to `data.in_memory_max_gb` on disk) is
read once with `tfds.data_source` and kept as numpy arrays. A larger one stays on disk
(columns.Records): the pipeline decodes each batch's rows when it needs them, in Grain worker
processes (`data.workers`). Either way the pipeline shuffles and batches indices, in the same
order.
"""

import contextlib
import dataclasses
import fcntl
import gzip
import os
import socket
import tempfile
import urllib.parse
import zipfile
import zlib

import numpy as np
from absl import logging

from research.data import columns, registry
from research.errors import UserError

_READ_CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class Split:
    """One split: every feature of the dataset as one array of N rows, in memory, or streamed
    (a columns.Records or columns.MappedArray per column, read by row when a batch needs it).

    "label" int32 [N], and by dataset: "image" uint8 [N,H,W,C] (digits, Fashion-MNIST, MNIST,
    CIFAR-10), "signal" float32 [N,L,C] (MNIST-1D: L=40, C=1), "text" object [N] of Python
    `str` (BBC News, IMDb reviews).
    """

    arrays: dict[str, np.ndarray]
    num_classes: int
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return self.arrays["label"].shape[0]


def _unresolvable_download_hosts(builder) -> list[str]:
    """Hosts of the builder's downloads that DNS cannot resolve. Offline, TFDS retries each
    download for minutes before failing; this answers at once. Behind a proxy, DNS may not
    resolve what the proxy reaches: nothing is checked then."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")):
        return []
    hosts = sorted({urllib.parse.urlparse(url).hostname for url in (builder.url_infos or {})} - {None})
    unresolvable = []
    for host in hosts:
        try:
            socket.getaddrinfo(host, 443)
        except OSError:
            unresolvable.append(host)
    return unresolvable


@contextlib.contextmanager
def exclusive(lock_path: str):
    """Holds an exclusive lock on `lock_path` (made if missing) across processes."""
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def _tidy_after_failure(builder):
    """A preparation that fails leaves nothing of its own in the TFDS directory: not its lock
    file, nor the empty directories made for it (TFDS removes its incomplete copy itself).
    A process waiting on the removed lock still takes it and finds nothing prepared."""
    before = set(_empty_dirs(builder))
    try:
        yield
    except BaseException:
        if not os.path.exists(builder.data_dir):
            with contextlib.suppress(OSError):
                os.remove(builder.data_dir + ".lock")
            for path in sorted(set(_empty_dirs(builder)) - before, key=len, reverse=True):
                with contextlib.suppress(OSError):
                    os.rmdir(path)
        raise


def _empty_dirs(builder) -> list[str]:
    """The empty directories under the TFDS directory of `builder` (its dataset's and the
    downloads' folders), each listed after the folders inside it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(builder.data_dir)))  # DIR/name/config/version
    found = []
    for folder in (os.path.dirname(os.path.dirname(builder.data_dir)), os.path.join(root, "downloads")):
        for path, dirs, files in os.walk(folder, topdown=False) if os.path.isdir(folder) else ():
            if not files and all(os.path.join(path, d) in found for d in dirs):
                found.append(path)
    return found


# Catalog features that are not model inputs: CIFAR-10's per-image id strings.
_SKIPPED_FEATURES = ("id",)


def prepared_builder(data_config):
    """The TFDS builder of `data_config.name`, prepared on disk (the first call writes it)."""
    if data_config.name not in registry.DATASETS:
        raise UserError(
            f"unknown dataset {data_config.name!r}; choose one of {sorted(registry.DATASETS)} "
            "with --config.data.name")
    if data_config.source not in ("auto", "local", "catalog"):
        raise UserError(
            f"unknown data.source {data_config.source!r}; use auto, local or catalog")
    data_dir = os.path.expanduser(data_config.tfds_dir) if data_config.tfds_dir else None
    make_builder = lambda: registry.DATASETS[data_config.name](data_config, data_dir)  # noqa: E731
    builder = make_builder()
    try:
        # Parallel runs prepare it once; a builder reads what is on disk when made, so the
        # one used is made inside the lock.
        with exclusive(builder.data_dir + ".lock"), _tidy_after_failure(builder):
            builder = make_builder()
            if getattr(builder, "hint", None) is not None and not builder.data_path.exists():
                unresolvable = _unresolvable_download_hosts(builder)
                if unresolvable:
                    raise ConnectionError(f"no network: cannot resolve {', '.join(unresolvable)}")
            builder.download_and_prepare()
    except FileNotFoundError as e:  # Our builders' missing files or packages, with the fix.
        raise UserError(str(e)) from e
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:  # A truncated or corrupt source file.
        raise UserError(
            f"dataset {data_config.name!r}: a source file is truncated or corrupt ({type(e).__name__}: "
            f"{e}); replace its files (for Fashion-MNIST, reinstall dataset-fashion-mnist or fix "
            "data.idx_dir) and rerun") from e
    except ModuleNotFoundError as e:
        if e.name != "tensorflow":
            raise
        raise UserError(
            f"preparing TFDS catalog dataset {data_config.name!r} needs TensorFlow (TFDS encodes "
            "its images with it), which the project installs only on request: run "
            "'.venv/bin/pip install \'.[catalog]\'' (tensorflow-cpu) once, on a machine with internet; "
            "training then reads the prepared data.tfds_dir without it") from e
    except Exception as e:  # The catalog route fails in many ways without a network.
        hint = getattr(builder, "hint", None)
        if hint is None:
            raise
        raise UserError(
            f"dataset {data_config.name!r} could not be downloaded through TFDS "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); {hint}") from e
    return builder


def load_split(data_config, split: str) -> Split:
    """One split of the configured dataset: read into memory, or streamed from its prepared
    files (columns.Records) when `in_memory(data_config, ...)` says so."""
    builder = prepared_builder(data_config)
    if split not in builder.info.splits:
        raise UserError(
            f"dataset {data_config.name!r} has no split {split!r}; "
            f"it has {sorted(builder.info.splits)}")
    label_feature = builder.info.features["label"]
    if in_memory(data_config, builder.info.splits[split].num_bytes):
        arrays = _decoded_arrays(builder, split)
    else:
        arrays = columns.Records(builder, split, skipped=_SKIPPED_FEATURES)
    loaded = Split(arrays=arrays, num_classes=label_feature.num_classes,
                   class_names=tuple(label_feature.names))
    return only_classes(loaded, tuple(data_config.classes), data_config.name)


def only_classes(split: Split, classes: tuple[str, ...], dataset: str) -> Split:
    """The examples of `classes` (data.classes, class names) alone, labelled 0, 1, ... in that
    order; the whole split when `classes` is empty."""
    if not classes:
        return split
    unknown = sorted(set(classes) - set(split.class_names))
    if unknown or len(set(classes)) != len(classes):
        raise UserError(f"data.classes={list(classes)}: {dataset!r} has the classes "
                        f"{list(split.class_names)}; name each once")
    if isinstance(split.arrays, columns.Records):
        raise UserError("data.classes works on splits held in memory; set --config.data.in_memory=true")
    old_labels = [split.class_names.index(name) for name in classes]
    keep = np.isin(split.arrays["label"], old_labels)
    relabel = np.full(len(split.class_names), -1, np.int32)
    relabel[old_labels] = np.arange(len(classes))
    arrays = {name: values[keep] for name, values in split.arrays.items()}
    arrays["label"] = relabel[arrays["label"]]
    return Split(arrays=arrays, num_classes=len(classes), class_names=tuple(classes))


def in_memory(data_config, num_bytes: int) -> bool:
    """Whether a split of `num_bytes` prepared bytes is held in memory: `data.in_memory`
    true or false, or with "auto" when it is at most `data.in_memory_max_gb`."""
    choice = str(data_config.in_memory).lower()
    if choice not in ("auto", "true", "false"):
        raise UserError(f"data.in_memory={data_config.in_memory!r}; use auto, true or false")
    if choice == "auto":
        return num_bytes <= data_config.in_memory_max_gb * 2**30
    return choice == "true"


def _decoded_arrays(builder, split: str) -> dict[str, np.ndarray]:
    """The split's columns, decoded once and then read from a cache beside the prepared files.

    TFDS decodes a data source record by record (about 9 s for Fashion-MNIST's 70,000 on
    2 cores, most of a run's start-up) and keeps no decoded copy, so the numeric columns are
    saved as `decoded-<split>.npz` in the dataset's version directory, with a fingerprint of
    the record files they came from (names, sizes, modification times). A cache that does
    not match, or cannot be read, is decoded again and replaced; one that cannot be written
    (a read-only data directory) is skipped. Text columns are not cached (`str` arrays need
    pickle); the text datasets used here are small.
    """
    cache_path = os.path.join(builder.data_dir, f"decoded-{split}.npz")
    files = columns.fingerprint(builder.info.splits[split].filepaths)
    with contextlib.suppress(OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        with np.load(cache_path, allow_pickle=False) as cached:
            if str(cached[_FINGERPRINT_KEY]) == files:
                return {name: cached[name] for name in cached.files if name != _FINGERPRINT_KEY}
    source = builder.as_data_source(split=split)
    examples = []
    for start in range(0, len(source), _READ_CHUNK):
        examples.extend(source.__getitems__(range(start, min(start + _READ_CHUNK, len(source)))))
    arrays = {name: columns.column(feature, [e[name] for e in examples])
              for name, feature in builder.info.features.items() if name not in _SKIPPED_FEATURES}
    if all(array.dtype != object for array in arrays.values()):
        _write_atomically(cache_path, {**arrays, _FINGERPRINT_KEY: np.asarray(files)})
    return arrays


_FINGERPRINT_KEY = "__fingerprint__"


def _write_atomically(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Writes an .npz under a temporary name and renames it, so that parallel runs and a
    killed run never leave a half-written cache under the real name."""
    try:
        fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz.tmp")
    except OSError as e:
        logging.warning("not caching the decoded split at %s: %s", path, e)
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from other users of the directory.
        os.replace(temporary, path)
    except OSError as e:
        logging.warning("not caching the decoded split at %s: %s", path, e)
        with contextlib.suppress(OSError):
            os.remove(temporary)
