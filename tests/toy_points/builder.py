"""Points in the plane, labelled by the side of a line they fall on: 400 train, 100 test."""

import numpy as np
import tensorflow_datasets as tfds


class ToyPoints(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "signal": tfds.features.Tensor(shape=(2, 1), dtype=np.float32),
            "label": tfds.features.ClassLabel(names=["below", "above"]),
        }))

    def _split_generators(self, dl_manager):
        del dl_manager
        points = np.random.default_rng(0).normal(size=(500, 2, 1)).astype(np.float32)
        labels = (points[:, 1, 0] > 0.5 * points[:, 0, 0]).astype(np.int64)
        return {"train": self._generate_examples(points[:400], labels[:400]),
                "test": self._generate_examples(points[400:], labels[400:])}

    def _generate_examples(self, points, labels):
        for i, (point, label) in enumerate(zip(points, labels, strict=True)):
            yield i, {"signal": point, "label": int(label)}
