import hashlib

import numpy as np
import pytest

from research.data.splits import stratified_split


def test_each_class_is_split_in_proportion_and_disjointly():
    labels = np.repeat(np.arange(3), [10, 20, 50])
    split = stratified_split(labels, 0.2, seed=0)
    assert np.bincount(labels[split["test"]]).tolist() == [2, 4, 10]
    np.testing.assert_array_equal(np.sort(np.concatenate(list(split.values()))), np.arange(80))


def test_the_seed_fixes_the_split():
    labels = np.repeat(np.arange(4), 25)
    a, b, c = (stratified_split(labels, 0.2, seed) for seed in (0, 0, 1))
    np.testing.assert_array_equal(a["test"], b["test"])
    assert not np.array_equal(a["test"], c["test"])


def test_digits_split_is_the_one_published_before_splits_existed():
    from sklearn.datasets import load_digits

    split = stratified_split(load_digits().target, 0.2, seed=0)
    assert (len(split["train"]), len(split["test"])) == (1438, 359)
    assert hashlib.sha256(split["test"].astype("<i8").tobytes()).hexdigest() == (
        "f71c9ddf317ebe278f01acb013a7eed702a00236a3733c9eefc19ea0e7aefeee")


@pytest.mark.parametrize("fraction", [0, 1, 1.5])
def test_fraction_outside_zero_one_is_refused(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(np.zeros(10), fraction, seed=0)
