"""The linear baseline of a text-classification table: TF-IDF of word 1- and 2-grams (sublinear
tf) and scikit-learn's LinearSVC, trained on a config's training split and evaluated on its test
split, the same splits the neural rows use. Writes <workdir>/results.json with the metric names
of a training run, so the table script reads it like one.

  .venv/bin/python scripts/baseline_tfidf.py --config=configs/bbc_news.py --workdir=runs/tfidf
      [--first_tokens=256]

--first_tokens=N reads only what a classifier of data.max_len N reads: BOS and the first N-1
pieces of the config's tokenizer, decoded back to text (how much of the gap to the neural rows
is the truncation).
"""

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

config_flags.DEFINE_config_file("config", None, "A text-classification config.", lock_config=True)
flags.DEFINE_string("workdir", None, "Where results.json goes.")
flags.DEFINE_integer("first_tokens", 0, "Read each text's first N tokens (with BOS) only; 0: whole texts.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    from research import metrics
    from research.data import sources

    config = flags.FLAGS.config
    start = time.time()
    train, test = (sources.load_split(config.data, split) for split in ("train", config.eval.split))
    if flags.FLAGS.first_tokens:
        from research.data import text, tokenizer

        tok = tokenizer.load(text.tokenizer_path(config.data, text.texts(train), workdir=None, init_from=""))
        for split in (train, test):
            ids = tok.encode_ids(list(split.arrays["text"]))
            split.arrays["text"] = np.array([tok.decode(row[:flags.FLAGS.first_tokens - 1]) for row in ids],
                                            dtype=object)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    classifier = LinearSVC().fit(vectorizer.fit_transform(train.arrays["text"]), train.arrays["label"])
    predicted = classifier.predict(vectorizer.transform(test.arrays["text"]))
    confusion = np.zeros((test.num_classes, test.num_classes), np.int64)
    np.add.at(confusion, (test.arrays["label"], predicted), 1)
    results = {"step": 0, **metrics.named_eval(metrics.classification_summary(confusion), config.eval.split,
                                                confusion),
               "wall_time_s": round(time.time() - start, 2)}
    os.makedirs(flags.FLAGS.workdir, exist_ok=True)
    with open(os.path.join(flags.FLAGS.workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    split = config.eval.split
    print(f"tf-idf + LinearSVC: {split} accuracy {results[f'eval/{split}/accuracy']:.4f}, "
          f"macro F1 {results[f'eval/{split}/f1']:.4f}, {len(test)} examples, {results['wall_time_s']:.1f} s")


if __name__ == "__main__":
    app.run(main)
