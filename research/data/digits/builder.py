"""scikit-learn's digits (1,797 8x8 images, 10 classes) as a TFDS dataset.

sklearn ships no split; this builder fixes one: a stratified 80/20 split seeded with 0, so
every machine sees the same 1,438 training and 359 test images. Pixels (0..16) are scaled to
uint8 0..255 so the data looks like every other image dataset here.
"""

import numpy as np
import tensorflow_datasets as tfds

from research.data.splits import stratified_split

_SPLIT_SEED = 0
_TEST_FRACTION = 0.2


class Digits(tfds.core.GeneratorBasedBuilder):
    """sklearn digits, 8x8x1 uint8, fixed stratified 80/20 split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Seeded stratified 80/20 split of sklearn.datasets.load_digits."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Shipped inside scikit-learn.
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.minimum(np.rint(digits.images * 16), 255).astype(np.uint8)[..., None]
        return {
            split: self._generate_examples(images[idx], digits.target[idx], idx)
            for split, idx in stratified_split(digits.target, _TEST_FRACTION, _SPLIT_SEED).items()
        }

    def _generate_examples(self, images, labels, ids):
        for image, label, example_id in zip(images, labels, ids, strict=True):
            yield int(example_id), {"image": image, "label": int(label)}
