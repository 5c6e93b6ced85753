import random

import numpy as np

from configs import common
from research.data import sources
from research.data.mnist1d import builder


def mnist1d_config(tfds_dir):
    config = common.base_config().data
    config.update(name="mnist1d", tfds_dir=tfds_dir)
    return config


def pairs(signals, labels):
    return sorted(zip(map(bytes, signals), labels.tolist(), strict=True))


def test_generation_is_fixed_and_leaves_global_random_state_alone(tfds_dir):
    np.random.seed(123)
    random.seed(123)
    numpy_state, python_state = np.random.get_state()[1].copy(), random.getstate()
    generated = builder.generate()
    assert random.getstate() == python_state
    # Preparing generates again: the prepared data is the same signals.
    train, test = (sources.load_split(mnist1d_config(tfds_dir), split) for split in ("train", "test"))
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)
    for split, data in (("train", train), ("test", test)):
        signals, labels = generated[split]
        assert pairs(data.arrays["signal"], data.arrays["label"]) == pairs(signals, labels)


def test_prepared_splits_have_the_published_shapes(tfds_dir):
    train, test = (sources.load_split(mnist1d_config(tfds_dir), split) for split in ("train", "test"))
    assert sorted(train.arrays) == ["label", "signal"]
    assert train.arrays["signal"].shape == (4000, 40, 1) and test.arrays["signal"].shape == (1000, 40, 1)
    assert train.arrays["signal"].dtype == np.float32 and train.arrays["label"].dtype == np.int32
    assert set(train.arrays["label"]) == set(range(10)) == set(test.arrays["label"])
    assert train.num_classes == 10 and train.class_names == tuple("0123456789")
    both = np.concatenate([train.arrays["signal"], test.arrays["signal"]])
    assert abs(both.mean()) < 1e-3 and abs(both.std() - 1) < 1e-3  # Standardised as a whole.
