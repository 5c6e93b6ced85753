"""Your own corpus (data.name=text_folder): files found by directory, glob or list; documents from
.txt files and .jsonl lines, split by a seeded permutation; a changed corpus is prepared again;
bad files are one error; the language model trains on it streamed and resumes bitwise after
a kill."""

import json
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from configs import lm
from research.data import sources
from research.data.text_folder import corpus_files
from research.errors import UserError
from research.train import loop
from tests.conftest import ROOT, run_program
from tests.train.conftest import assert_same_run, saved_steps, wait_for_checkpoint

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


def test_a_binary_txt_file_is_one_error_and_a_failed_preparation_leaves_nothing(tmp_path):
    write_corpus(tmp_path / "corpus")
    (tmp_path / "corpus" / "books" / "photo.txt").write_bytes(bytes(range(256)) * 4)
    tfds_dir = tmp_path / "tfds"
    tfds_dir.mkdir()
    with pytest.raises(UserError, match=r"photo.txt is not UTF-8 text \(byte 128"):
        sources.load_split(data_config(tmp_path / "corpus", str(tfds_dir)), "train")
    assert list(tfds_dir.iterdir()) == []  # No lock file, no empty folders of its own.


def test_the_language_model_streams_a_corpus_and_resumes_exactly_after_a_kill(tmp_path):
    """The corpus streamed (token windows memory-mapped, a Grain worker gathering batches),
    killed after its first checkpoint and rerun, ends bitwise where the in-memory run does."""
    write_corpus(tmp_path / "corpus", documents=60)
    config = lm.get_config("size=tiny")
    config.data.update(name="text_folder", files=str(tmp_path / "corpus"), tfds_dir=str(tmp_path / "tfds"),
                       vocab_size=400)
    config.train.update(steps=60, log_every=5, eval_every=30, checkpoint_every=5)
    whole = str(tmp_path / "whole")
    results = loop.train_and_evaluate(config, whole)
    assert results["status"] == "finished" and np.isfinite(results["eval/test/perplexity"])

    streamed = str(tmp_path / "streamed")
    flags = ["--config=configs/lm.py:size=tiny", f"--workdir={streamed}", "--config.data.in_memory=false",
             "--config.data.workers=1",
             *(f"--config.data.{key}={config.data[key]}"
               for key in ("name", "files", "tfds_dir", "vocab_size")),
             *(f"--config.train.{key}={config.train[key]}" for key in
               ("steps", "log_every", "eval_every", "checkpoint_every"))]
    process = subprocess.Popen([sys.executable, "-m", "experiments.train", *flags], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(process, streamed)
    process.kill()
    process.communicate(timeout=60)  # Would wait for ever on a Grain worker left holding stderr.
    killed_at = saved_steps(streamed)
    assert killed_at and killed_at[-1] < 60

    rerun = run_program("experiments.train", *flags)

    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"from step {killed_at[-1]}" in rerun.stderr
    assert "tracked_metric" not in rerun.stderr  # Orbax's noise on saves between evaluations.
    assert_same_run(whole, streamed)
