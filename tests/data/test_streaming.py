"""Streamed splits (data.in_memory=false): the same batches, in the same order, as the in-memory
path, with or without Grain worker processes; positions restore across either; text datasets'
token arrays on disk equal the in-memory ones and are written once."""

import os

import grain
import numpy as np
import pytest

from research.data import augment, columns, pipeline, sources, text, tokenizer
from research.errors import UserError
from tests.data.test_text_folder import data_config, write_corpus


def splits(config, split="train"):
    config = config.copy_and_resolve_references()
    config.in_memory = "true"
    in_memory = sources.load_split(config, split)
    config.in_memory = "false"
    return in_memory, sources.load_split(config, split)


def first(iterator, count):
    return [next(iterator) for _ in range(count)]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for name in x:
            np.testing.assert_array_equal(x[name], y[name])


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_are_the_in_memory_batches(digits_config, workers):
    in_memory, streamed = splits(digits_config.data)
    assert isinstance(streamed.arrays, columns.Records) and len(streamed) == len(in_memory)
    assert streamed.arrays["image"].shape == in_memory.arrays["image"].shape
    assert streamed.arrays["image"].dtype == in_memory.arrays["image"].dtype
    flip = augment.parse("flip_lr|random_crop(pad=1)")
    for ops in (None, flip):
        expected = first(pipeline.train_batches(in_memory.arrays, batch_size=32, seed=5, rows=slice(8, 24),
                                                augment=ops), 60)  # More than an epoch of 1,437.
        iterator = pipeline.train_batches(streamed.arrays, batch_size=32, seed=5, rows=slice(8, 24),
                                          augment=ops, workers=workers)
        assert_same_batches(first(iterator, 60), expected)
        iterator.close()
    assert_same_batches(list(pipeline.eval_batches(streamed.arrays, batch_size=100, rows=slice(50, 100))),
                        list(pipeline.eval_batches(in_memory.arrays, batch_size=100, rows=slice(50, 100))))


def test_a_position_restores_with_any_number_of_workers(digits_config):
    _, streamed = splits(digits_config.data)
    with_workers = pipeline.train_batches(streamed.arrays, batch_size=16, seed=0, workers=2)
    first(with_workers, 7)
    state = with_workers.get_state()
    expected = first(with_workers, 3)
    with_workers.close()
    in_a_thread = pipeline.train_batches(streamed.arrays, batch_size=16, seed=0)
    in_a_thread.set_state(state)
    assert_same_batches(first(in_a_thread, 3), expected)
    # The position is Grain's own iterator state, so checkpoints made before streaming restore.
    grain_iterator = iter(grain.MapDataset.range(100).to_iter_dataset())
    first(grain_iterator, 7)
    assert grain_iterator.get_state() == state == {"next_index": 7}


def test_auto_streams_splits_above_the_size_limit(digits_config):
    config = digits_config.data.copy_and_resolve_references()
    assert isinstance(sources.load_split(config, "train").arrays["image"], np.ndarray)
    config.in_memory_max_gb = 1e-4  # 105 kB; the prepared digits train split is about 160 kB.
    assert isinstance(sources.load_split(config, "train").arrays, columns.Records)
    config.in_memory = "sometimes"
    with pytest.raises(UserError, match="data.in_memory='sometimes'; use auto, true or false"):
        sources.load_split(config, "train")


def test_token_arrays_on_disk_equal_the_in_memory_ones_and_are_written_once(tmp_path):
    write_corpus(tmp_path / "corpus", documents=40)
    config = data_config(tmp_path / "corpus", str(tmp_path / "tfds"))
    in_memory, streamed = splits(config)
    tok = tokenizer.train(list(text.texts(streamed)), 300, str(tmp_path / "tok.model"))
    assert list(text.texts(streamed)) == list(in_memory.arrays["text"])
    for language_model in (True, False):
        expected = text.as_inputs(in_memory, tok, 64, language_model=language_model)
        on_disk = text.as_inputs(streamed, tok, 64, language_model=language_model)
        assert isinstance(on_disk.arrays["tokens"], columns.MappedArray)
        for name, values in expected.arrays.items():
            np.testing.assert_array_equal(on_disk.arrays[name][:], values)
            rows = np.array([3, 0, len(values) - 1])
            np.testing.assert_array_equal(on_disk.arrays[name][rows], values[rows])
    files = sorted((tmp_path / "tfds").rglob("*.tokens"))
    assert len(files) == 2
    written = [os.stat(f).st_mtime_ns for f in files]
    text.as_inputs(streamed, tok, 64, language_model=True)
    assert [os.stat(f).st_mtime_ns for f in files] == written
