"""Your own corpus as a TFDS dataset: `data.name=text_folder`, `data.files=` a directory (every
.txt and .jsonl under it), a glob, or several of either joined by commas.

A `.txt` file is one document; a `.jsonl` file is one document a line, its `data.text_field`
("text" unless set). Documents are read in a fixed order (files sorted by path, lines in
order) and split by a seeded permutation: `data.test_fraction` of them (at least one) is the
`test` split, the rest `train`. The prepared dataset is named by a fingerprint of the files
(paths, sizes and modification times), so changing the corpus prepares it again and two
corpora never share prepared files. Label: one class, "text" (language models ignore it).
"""

import glob
import hashlib
import json
import os

import numpy as np
import tensorflow_datasets as tfds

from research.data.splits import stratified_split
from research.errors import UserError

SUFFIXES = (".txt", ".jsonl")
_SPLIT_SEED = 0


def corpus_files(spec: str) -> list[str]:
    """The corpus's files, sorted: each comma-separated part of `spec` is a directory (its .txt
    and .jsonl files, recursively) or a glob."""
    files = set()
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        part = os.path.expanduser(part)
        if os.path.isdir(part):
            matches = glob.glob(os.path.join(part, "**", "*"), recursive=True)
        else:
            matches = glob.glob(part, recursive=True)
        chosen = [m for m in matches if os.path.isfile(m) and m.endswith(SUFFIXES)]
        if not chosen:
            raise UserError(f"data.files: {part!r} names no .txt or .jsonl file; give a directory, "
                                    "a glob or a comma-separated list of them (--config.data.files)")
        files.update(os.path.abspath(m) for m in chosen)
    if not files:
        raise UserError("data.name=text_folder needs --config.data.files=DIR|GLOB[,...]")
    return sorted(files)


def fingerprint(files: list[str], text_field: str, test_fraction: float) -> str:
    """A short name for this corpus and split: what a prepared copy must match."""
    digest = hashlib.sha256(f"{text_field}|{test_fraction}".encode())
    for path in files:
        stat = os.stat(path)
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return "c" + digest.hexdigest()[:16]


def read_documents(files: list[str], text_field: str):
    """(document id, text) of every document, in order."""
    for path in files:
        if path.endswith(".txt"):
            yield path, _utf8_text(path)
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{number} is not JSON ({e.msg})") from e
                if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                    raise UserError(f"{path}:{number} has no string field {text_field!r} "
                                     "(--config.data.text_field)")
                yield f"{path}:{number}", record[text_field]


def _utf8_text(path: str) -> str:
    """The text of a .txt file, refused when it is not UTF-8 text (a binary file so named would
    otherwise train on replacement characters)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}); convert it to UTF-8 "
                        "or leave it out of data.files") from e
    if "\x00" in text:
        raise UserError(f"{path} holds NUL bytes: a binary file, not text; leave it out of data.files")
    return text


class TextFolderConfig(tfds.core.BuilderConfig):
    def __init__(self, *, files: list[str], text_field: str, test_fraction: float):
        super().__init__(name=fingerprint(files, text_field, test_fraction),
                         description=f"{len(files)} files, e.g. {files[0]}")
        self.files, self.text_field, self.test_fraction = files, text_field, test_fraction


class TextFolder(tfds.core.GeneratorBasedBuilder):
    """Documents from .txt and .jsonl files, split train/test by a seeded permutation."""

    name = "text_folder"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "One document a .txt file or a .jsonl line; seeded train/test split."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "text": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=["text"]),
            }),
            description="A corpus of the user's own text files.",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Local files.
        documents = list(read_documents(self.builder_config.files, self.builder_config.text_field))
        if len(documents) < 2:
            raise UserError(f"data.files: {len(documents)} document(s) found; a train and a "
                                    "test split need at least 2")
        fraction = self.builder_config.test_fraction
        indices = stratified_split(np.zeros(len(documents)), fraction, _SPLIT_SEED)
        if not len(indices["test"]):  # A tiny corpus: one document is still a test set.
            indices = {"train": np.arange(1, len(documents)), "test": np.arange(1)}
        return {split: self._generate_examples([documents[i] for i in idx]) for split, idx in indices.items()}

    def _generate_examples(self, documents):
        for document_id, text in documents:
            yield document_id, {"text": text, "label": 0}
