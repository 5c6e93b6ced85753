import collections
import hashlib

import numpy as np
import pytest

from configs import common
from research.data import sources
from research.data.bbc_news import builder


@pytest.fixture(scope="module")
def bbc(tfds_dir):
    config = common.base_config().data
    config.update(name="bbc_news", tfds_dir=tfds_dir)
    return {split: sources.load_split(config, split) for split in ("train", "test")}


def test_every_article_once_split_80_20_in_each_class(bbc):
    train, test = bbc["train"].arrays["label"], bbc["test"].arrays["label"]
    assert (len(train), len(test)) == (1781, 444)
    counts = np.bincount(train, minlength=5) + np.bincount(test, minlength=5)
    assert counts.tolist() == [510, 386, 417, 511, 401]
    assert np.all(np.abs(np.bincount(test) / counts - 0.2) < 0.01)
    assert bbc["train"].class_names == ("business", "entertainment", "politics", "sport", "tech")


def test_texts_are_nonempty_str(bbc):
    for split in bbc.values():
        texts = split.arrays["text"]
        assert texts.dtype == object and texts.shape == split.arrays["label"].shape
        assert all(type(text) is str and text.strip() for text in texts)
    # The one Latin-1 file decodes to a pound sign.
    assert any("a \u00a315.8m signing" in text for split in bbc.values() for text in split.arrays["text"])


def test_split_is_the_recorded_one(bbc):
    ids, texts, labels = builder.read_articles()
    test = builder.split_indices(labels)["test"]
    assert hashlib.sha256("\n".join(ids[i] for i in test).encode()).hexdigest() == (
        "2b41b6082d6b8c8ef1a292767a62f8ecafebf5db858f99dccd8bda4a18a189d7")
    test_split = bbc["test"].arrays
    prepared = collections.Counter(zip(test_split["text"], test_split["label"].tolist(), strict=True))
    assert prepared == collections.Counter((texts[i], int(labels[i])) for i in test)


def test_the_tfidf_baseline_row_reads_the_same_split_and_writes_a_run_like_result(tfds_dir, tmp_path):
    import json

    from tests.conftest import run_program

    done = run_program("scripts.baseline_tfidf", "--config=configs/bbc_news.py",
                       f"--config.data.tfds_dir={tfds_dir}", f"--workdir={tmp_path}")
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.load(open(tmp_path / "results.json"))
    assert sum(map(sum, results["eval/test/confusion_matrix"])) == 444
    assert results["eval/test/accuracy"] > 0.95 and "eval/test/f1" in results
