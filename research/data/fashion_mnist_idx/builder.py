"""Fashion-MNIST from the four IDX files on disk, as a TFDS dataset.

TFDS's catalog builder checks the downloaded archives' checksums, and the Debian package's
.gz files differ byte-wise from upstream's (same contents), so the catalog builder rejects
them. This builder reads the same files and yields the catalog's feature names, shapes,
dtypes and splits. Features are plain tensors rather than `tfds.features.Image`, whose
encoder needs TensorFlow.
"""

import gzip
import os
import struct

import numpy as np
import tensorflow_datasets as tfds

DEFAULT_IDX_DIR = "/usr/share/datasets/fashion-mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def read_idx(path: str) -> np.ndarray:
    """Reads a (gzipped) IDX file: big-endian header of dims, then unsigned bytes."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        zero, dtype_code, ndim = struct.unpack(">HBB", f.read(4))
        if zero != 0 or dtype_code != 0x08:
            raise ValueError(f"{path} is not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        data = np.frombuffer(f.read(), dtype=np.uint8)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {np.prod(shape)} values, got {data.size}")
    return data.reshape(shape)


def missing_files(idx_dir: str) -> list[str]:
    return [
        os.path.join(idx_dir, name)
        for pair in _FILES.values()
        for name in pair
        if not os.path.exists(os.path.join(idx_dir, name))
    ]


class FashionMnistIdx(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST (60,000 train / 10,000 test, 28x28x1 uint8, 10 classes)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Read from local IDX files."}

    def __init__(self, *, idx_dir: str = DEFAULT_IDX_DIR, **kwargs):
        self._idx_dir = idx_dir
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(names=CLASS_NAMES),
            }),
            supervised_keys=("image", "label"),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing is downloaded.
        missing = missing_files(self._idx_dir)
        if missing:
            raise FileNotFoundError(
                f"Fashion-MNIST IDX files not found: {', '.join(missing)}. Install them with "
                "'apt-get install dataset-fashion-mnist' (as root), or pass "
                "--config.data.idx_dir=DIR pointing at the four IDX .gz files."
            )
        return {split: self._generate_examples(split) for split in _FILES}

    def _generate_examples(self, split):
        images_name, labels_name = _FILES[split]
        images = read_idx(os.path.join(self._idx_dir, images_name))
        labels = read_idx(os.path.join(self._idx_dir, labels_name))
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield i, {"image": image[:, :, None], "label": int(label)}
