"""MNIST-1D (Greydanus 2020): 5,000 1-D signals of length 40, 10 classes, as a TFDS dataset.

Generated with the `mnist1d` package's defaults, `make_dataset(get_dataset_args())`: 4,000
train and 1,000 test signals, the package's own split. `get_dataset` is never called, as it
downloads first. Generation is seeded (the package's seed 42), so every machine gets the same
signals; they are standardised over the whole dataset (mean 0, std 1) and stored as float32
[40, 1], channels last, so 1-D convolutions and GRUs read [length, channels].
"""

import contextlib
import random

import numpy as np
import tensorflow_datasets as tfds

SIGNAL_LENGTH = 40
CLASS_NAMES = tuple(str(digit) for digit in range(10))


@contextlib.contextmanager
def _global_random_state_kept():
    """Restores numpy's and Python's global random state on exit: `make_dataset` reseeds both,
    which would silently change the random numbers of anything else in the process."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def generate() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (signals float32 [4000, 40, 1], labels int64 [4000]), "test": ... [1000]}."""
    try:
        import mnist1d.data  # Imports matplotlib: only when the data is made.
    except ModuleNotFoundError as e:
        raise FileNotFoundError(f"MNIST-1D needs the mnist1d package ({e}): "
                                "pip install mnist1d==0.0.2.post1") from e

    with _global_random_state_kept():
        data = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    return {
        "train": (data["x"].astype(np.float32)[..., None], data["y"]),
        "test": (data["x_test"].astype(np.float32)[..., None], data["y_test"]),
    }


class Mnist1d(tfds.core.GeneratorBasedBuilder):
    """MNIST-1D (4,000 train / 1,000 test, float32 [40, 1], 10 classes)."""

    name = "mnist1d"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "mnist1d.data.make_dataset with the package's default arguments."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "signal": tfds.features.Tensor(shape=(SIGNAL_LENGTH, 1), dtype=np.float32),
                "label": tfds.features.ClassLabel(names=CLASS_NAMES),
            }),
            supervised_keys=("signal", "label"),
            homepage="https://github.com/greydanus/mnist1d",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Generated locally.
        return {split: self._generate_examples(*arrays) for split, arrays in generate().items()}

    def _generate_examples(self, signals, labels):
        for i, (signal, label) in enumerate(zip(signals, labels, strict=True)):
            yield i, {"signal": signal, "label": int(label)}
