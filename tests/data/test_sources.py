import gzip
import os
import socket
import struct
import time

import numpy as np
import pytest

from configs import common
from research.data import columns, sources
from research.data.fashion_mnist_idx import builder as idx_builder
from research.data.splits import stratified_split
from research.errors import UserError


def write_idx(path, array):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_dir(tmp_path):
    """A miniature Fashion-MNIST in IDX files: 12 train and 5 test images."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("t10k", 5)):
        arrays[split] = (rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n))
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", arrays[split][0])
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", arrays[split][1])
    return tmp_path, arrays


def fashion_config(idx_path, tfds_path, source="auto"):
    config = common.base_config().data
    config.update(name="fashion_mnist", idx_dir=str(idx_path), tfds_dir=str(tfds_path), source=source)
    return config


def test_fashion_mnist_builder_reads_idx_files(idx_dir, tmp_path):
    path, arrays = idx_dir
    for split, idx_name in (("train", "train"), ("test", "t10k")):
        data = sources.load_split(fashion_config(path, tmp_path / "tfds"), split)
        images, labels = arrays[idx_name]
        assert data.arrays["image"].shape == (len(labels), 28, 28, 1)
        assert data.arrays["image"].dtype == np.uint8
        # TFDS stores examples in an order hashed from their keys: compare as sets of pairs.
        written = sorted(zip(map(bytes, images.astype(np.uint8)), labels.tolist(), strict=True))
        read = sorted(zip(map(bytes, data.arrays["image"][..., 0]), data.arrays["label"].tolist(),
                          strict=True))
        assert read == written
        assert data.num_classes == 10 and data.class_names[9] == "Ankle boot"


def test_missing_idx_files_name_the_fix(tmp_path):
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        sources.load_split(fashion_config(tmp_path / "nowhere", tmp_path / "tfds", source="local"), "train")


def test_truncated_idx_file_is_rejected(tmp_path):
    write_idx(tmp_path / "x.gz", np.zeros((3, 28, 28)))
    with gzip.open(tmp_path / "x.gz", "rb") as f:
        data = f.read()
    with gzip.open(tmp_path / "y.gz", "wb") as f:
        f.write(data[:-10])
    with pytest.raises(ValueError, match="truncated"):
        idx_builder.read_idx(str(tmp_path / "y.gz"))


@pytest.mark.skipif(not os.path.exists(idx_builder.DEFAULT_IDX_DIR), reason="Debian files not installed")
def test_debian_fashion_mnist_files_have_the_published_sizes():
    directory = idx_builder.DEFAULT_IDX_DIR
    assert idx_builder.read_idx(f"{directory}/t10k-images-idx3-ubyte.gz").shape == (10000, 28, 28)
    labels = idx_builder.read_idx(f"{directory}/train-labels-idx1-ubyte.gz")
    assert labels.shape == (60000,)
    np.testing.assert_array_equal(np.bincount(labels), [6000] * 10)


def test_digits_split_is_fixed_stratified_and_disjoint(digits_config):
    train = sources.load_split(digits_config.data, "train")
    test = sources.load_split(digits_config.data, "test")
    assert (len(train), len(test)) == (1438, 359)
    assert train.arrays["image"].shape[1:] == (8, 8, 1)
    counts = np.bincount(test.arrays["label"]) / np.bincount(train.arrays["label"])
    assert np.all((counts > 0.2) & (counts < 0.3))  # Every class is split about 80/20.
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.minimum(np.rint(digits.images * 16), 255).astype(np.uint8)
    test_index = {bytes(image): i for i, image in enumerate(images)}
    # The prepared test images are the ones splits.py picks (the split digits always had).
    picked = sorted(test_index[bytes(image)] for image in test.arrays["image"][..., 0])
    np.testing.assert_array_equal(picked, stratified_split(digits.target, 0.2, seed=0)["test"])


def test_unknown_dataset_and_split(digits_config):
    digits_config.data.name = "imagenet"
    with pytest.raises(UserError, match="unknown dataset"):
        sources.load_split(digits_config.data, "train")
    digits_config.data.name = "digits"
    with pytest.raises(UserError, match="no split 'validation'"):
        sources.load_split(digits_config.data, "validation")


def data_config(name, tfds_path, source="auto"):
    config = common.base_config().data
    config.update(name=name, tfds_dir=str(tfds_path), source=source)
    return config


def test_catalog_dataset_offline_fails_at_once_with_one_line(tmp_path, monkeypatch):
    def no_dns(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)  # Offline, whatever this machine is.
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    start = time.monotonic()
    with pytest.raises(UserError, match="cannot resolve www.cs.toronto.edu.*needs internet") as error:
        sources.load_split(data_config("cifar10", tmp_path), "train")
    assert time.monotonic() - start < 30 and "\n" not in str(error.value)


@pytest.mark.parametrize("name, source, message", [
    ("mnist1d", "catalog", "the TFDS catalog has no dataset 'mnist1d'"),
    ("bbc_news", "catalog", "the TFDS catalog has no dataset 'bbc_news'"),
    ("imdb_reviews", "local", "comes from the TFDS catalog"),
])
def test_source_a_dataset_lacks_is_a_user_error(tmp_path, name, source, message):
    with pytest.raises(UserError, match=message):
        sources.load_split(data_config(name, tmp_path, source), "train")


def test_decoded_split_is_cached_and_decoded_again_when_stale_or_corrupt(idx_dir, tmp_path, monkeypatch):
    path, _ = idx_dir
    config = fashion_config(path, tmp_path / "tfds")
    decoded = []
    column = columns.column
    monkeypatch.setattr(columns, "column", lambda *a: decoded.append(1) or column(*a))

    def load():
        decoded.clear()
        return sources.load_split(config, "train").arrays, bool(decoded)

    first, was_decoded = load()
    assert was_decoded
    (cache,) = (tmp_path / "tfds").rglob("decoded-train.npz")
    second, was_decoded = load()
    assert not was_decoded
    for name in first:
        np.testing.assert_array_equal(second[name], first[name])
        assert second[name].dtype == first[name].dtype

    cache.write_bytes(b"not an npz")  # A corrupt cache is decoded again and replaced.
    third, was_decoded = load()
    assert was_decoded and not load()[1]
    np.testing.assert_array_equal(third["image"], first["image"])

    (records,) = cache.parent.glob("*-train.array_record*")  # Re-prepared files: stale cache.
    os.utime(records, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert load()[1] and not load()[1]
    assert not list(cache.parent.glob("*.tmp"))
