"""Two interleaved half-moons in the plane (scikit-learn's make_moons): 1,000 points with
Gaussian noise of 0.2, seeded with 0, split 80/20 stratified with seed 0. A binary task small
enough to see: `plots/predictions.png` draws what a model learned over the plane.
"""

import numpy as np
import tensorflow_datasets as tfds

from research.data.splits import stratified_split

_POINTS, _NOISE, _SEED, _SPLIT_SEED, _TEST_FRACTION = 1000, 0.2, 0, 0, 0.2


class TwoMoons(tfds.core.GeneratorBasedBuilder):
    """2-D points (float32 "features") labelled by the moon they lie on."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "make_moons(1000, noise=0.2, random_state=0), seeded stratified 80/20 split."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "features": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                "label": tfds.features.ClassLabel(names=["lower moon", "upper moon"]),
            }),
            supervised_keys=("features", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Made by scikit-learn.
        from sklearn.datasets import make_moons

        points, labels = make_moons(_POINTS, noise=_NOISE, random_state=_SEED)
        # make_moons' upper moon is label 0: flip so "upper moon" is class 1.
        labels = 1 - labels
        return {split: self._generate_examples(points[idx].astype(np.float32), labels[idx], idx)
                for split, idx in stratified_split(labels, _TEST_FRACTION, _SPLIT_SEED).items()}

    def _generate_examples(self, points, labels, ids):
        for point, label, example_id in zip(points, labels, ids, strict=True):
            yield int(example_id), {"features": point, "label": int(label)}

