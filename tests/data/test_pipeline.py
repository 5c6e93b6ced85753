import numpy as np
import pytest

from research.data import pipeline


def arrays(n=10):
    return {"image": np.arange(n, dtype=np.uint8)[:, None], "label": np.arange(n, dtype=np.int32)}


def take(iterator, count):
    return [next(iterator)["label"] for _ in range(count)]


def test_each_epoch_is_a_new_permutation_and_seeded():
    labels = np.concatenate(take(pipeline.train_batches(arrays(), batch_size=5, seed=3), 6))
    epochs = labels.reshape(3, 10)
    for epoch in epochs:
        assert sorted(epoch) == list(range(10))
    assert not np.array_equal(epochs[0], epochs[1])
    again = np.concatenate(take(pipeline.train_batches(arrays(), batch_size=5, seed=3), 6))
    other = np.concatenate(take(pipeline.train_batches(arrays(), batch_size=5, seed=4), 6))
    np.testing.assert_array_equal(labels, again)
    assert not np.array_equal(labels, other)


def test_batches_cross_epoch_boundaries_without_dropping():
    labels = np.concatenate(take(pipeline.train_batches(arrays(), batch_size=4, seed=0), 5))
    assert sorted(labels[:10]) == list(range(10)) and sorted(labels[10:20]) == list(range(10))


def test_restored_iterator_continues_with_the_same_batches():
    iterator = pipeline.train_batches(arrays(), batch_size=3, seed=0)
    take(iterator, 4)
    state = iterator.get_state()
    expected = take(iterator, 5)
    resumed = pipeline.train_batches(arrays(), batch_size=3, seed=0)
    resumed.set_state(state)
    np.testing.assert_array_equal(take(resumed, 5), expected)


@pytest.mark.parametrize("n,batch_size", [(10, 4), (8, 4), (3, 8)])
def test_eval_covers_every_example_once(n, batch_size):
    batches = list(pipeline.eval_batches(arrays(n), batch_size=batch_size))
    assert all(len(b["label"]) == batch_size for b in batches)
    seen = np.concatenate([b["label"][b["mask"]] for b in batches])
    np.testing.assert_array_equal(seen, np.arange(n))
    assert sum(b["mask"].sum() for b in batches) == n
