"""Your own corpus (data.name=text_folder): files found by directory, glob or list; documents from
.txt files and .jsonl lines, split by a seeded permutation; a changed corpus is prepared again;
bad files are one error; the language model trains on it and resumes bitwise."""

import json
import signal

import jax
import ml_collections
import numpy as np
import pytest

from configs import lm
from research.data import sources
from research.data.text_folder import corpus_files
from research.errors import UserError
from research.sweeps.reproduce import final_params
from research.train import loop
from tests.conftest import StopAfterCalls
from tests.train.test_loop import read_json

# Made-up words of 2-7 letters: enough distinct pieces for a tokenizer of a few hundred.
WORDS = ["".join(np.random.default_rng(i).choice(list("abcdefghijklmnopqrstuvwxyz"), 2 + i % 6))
         for i in range(400)]


def write_corpus(root, documents: int = 30) -> None:
    rng = np.random.default_rng(0)
    text = lambda: " ".join(rng.choice(WORDS, 120)) + "."  # noqa: E731
    (root / "books").mkdir(parents=True)
    for i in range(documents // 2):
        (root / "books" / f"{i:03d}.txt").write_text(text())
    with open(root / "web.jsonl", "w") as f:
        for _ in range(documents - documents // 2):
            f.write(json.dumps({"text": text(), "url": "x"}) + "\n")
        f.write("\n")  # Blank lines are skipped.
    (root / "notes.md").write_text("not part of the corpus")


def data_config(root, tfds_dir) -> ml_collections.ConfigDict:
    config = lm.get_config("size=tiny").data
    config.update(name="text_folder", files=str(root), tfds_dir=tfds_dir)
    return config


def test_files_by_directory_glob_and_list(tmp_path):
    write_corpus(tmp_path)
    everything = corpus_files(str(tmp_path))
    assert len(everything) == 16 and not any(path.endswith(".md") for path in everything)
    assert corpus_files(f"{tmp_path}/books/*.txt,{tmp_path}/web.jsonl") == everything
    with pytest.raises(UserError, match="names no .txt or .jsonl file"):
        corpus_files(str(tmp_path / "notes.md"))


def test_documents_are_split_and_a_changed_corpus_is_prepared_again(tmp_path):
    corpus, tfds_dir = tmp_path / "corpus", str(tmp_path / "tfds")
    write_corpus(corpus)
    config = data_config(corpus, tfds_dir)
    train, test = sources.load_split(config, "train"), sources.load_split(config, "test")
    assert len(train) + len(test) == 30 and len(test) == round(30 * 0.05)
    assert len(set(train.arrays["text"]) | set(test.arrays["text"])) == 30
    (corpus / "books" / "000.txt").write_text("a new first book")
    assert "a new first book" in {*sources.load_split(config, "train").arrays["text"],
                                  *sources.load_split(config, "test").arrays["text"]}


def test_a_jsonl_line_without_the_text_field_is_one_error(tmp_path):
    write_corpus(tmp_path / "corpus")
    with open(tmp_path / "corpus" / "web.jsonl", "a") as f:
        f.write(json.dumps({"body": "no text here"}) + "\n")
    with pytest.raises(UserError, match=r"web.jsonl:17 has no string field 'text'"):
        sources.load_split(data_config(tmp_path / "corpus", str(tmp_path / "tfds")), "train")


def test_the_language_model_trains_on_a_corpus_and_resumes_bitwise(tmp_path, monkeypatch):
    write_corpus(tmp_path / "corpus", documents=60)
    config = lm.get_config("size=tiny")
    config.data.update(name="text_folder", files=str(tmp_path / "corpus"), tfds_dir=str(tmp_path / "tfds"),
                       vocab_size=400)
    config.train.update(steps=8, log_every=2, eval_every=4, checkpoint_every=2)
    whole = str(tmp_path / "whole")
    results = loop.train_and_evaluate(config, whole)
    assert results["status"] == "finished" and np.isfinite(results["eval/test/perplexity"])
    resumed = str(tmp_path / "resumed")
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", lambda **_: StopAfterCalls(5))
        assert loop.train_and_evaluate(config, resumed) == {"status": "stopped", "signal": signal.SIGTERM,
                                                             "step": 5}
    loop.train_and_evaluate(config, resumed)
    assert read_json(f"{whole}/results.json") == read_json(f"{resumed}/results.json")
    for a, b in zip(*(jax.tree.leaves(final_params(w)) for w in (whole, resumed)), strict=True):
        np.testing.assert_array_equal(a, b)
