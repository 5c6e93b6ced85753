"""Text datasets as model inputs: the run's tokenizer and the token arrays made with it.

A run's tokenizer is trained on the training split only and saved with the run
(`<workdir>/tokenizer.model`), so evaluation and generation read text exactly as training
did. Which one a run uses, in order: the one already in its workdir (a resumed or finished
run); the `init_from` run's (its embeddings index that vocabulary); else one trained on the
training texts, kept beside the prepared dataset so every run of that dataset and vocabulary
size shares it (training is deterministic, so this only saves time).
"""

import hashlib
import os
import shutil
from collections.abc import Iterator

import numpy as np

from research.data import columns, sources, tokenizer
from research.data.sources import Split
from research.errors import UserError

TOKENIZER_FILE = "tokenizer.model"


def tokenizer_path(data_config, train_texts, *, workdir: str | None, init_from: str) -> str:
    """The file of the tokenizer a run uses (see the module docstring); trains it if needed."""
    for run in (workdir, init_from):
        if run and os.path.exists(os.path.join(run, TOKENIZER_FILE)):
            return os.path.join(run, TOKENIZER_FILE)
    if init_from and os.path.isdir(os.path.join(init_from, "checkpoints")):
        raise UserError(f"init_from: {init_from} has no {TOKENIZER_FILE}; a text model can only start "
                        "from a run that saved its tokenizer")
    builder = sources.prepared_builder(data_config)
    # Named by what it is trained on: the vocabulary size and the classes kept (data.classes).
    classes = "".join(f"-{name}" for name in data_config.classes)
    kind = data_config.tokenizer
    size = "char" if kind == "char" else f"vocab{data_config.vocab_size}"
    cached = os.path.join(builder.data_dir, f"tokenizer_{size}{classes}.model")
    with sources.exclusive(cached + ".lock"):  # Parallel sweep runs train it once.
        if not os.path.exists(cached):
            tokenizer.train(list(train_texts), data_config.vocab_size, cached, kind=kind)
    return cached


def run_tokenizer_file(workdir: str) -> str:
    """The tokenizer saved with a run, for programs that read a finished run."""
    path = os.path.join(workdir, TOKENIZER_FILE)
    if not os.path.exists(path):
        raise UserError(f"{workdir} has no {TOKENIZER_FILE}: it is not the workdir of a text run")
    return path


def save_with_run(path: str, workdir: str) -> None:
    """Copies the tokenizer at `path` into `workdir` (once: a run keeps the one it began with)."""
    target = os.path.join(workdir, TOKENIZER_FILE)
    if os.path.abspath(path) != os.path.abspath(target) and not os.path.exists(target):
        shutil.copyfile(path, target + ".tmp")
        os.replace(target + ".tmp", target)


def texts(split: Split) -> Iterator[str]:
    """The split's texts in order, read a chunk at a time when it is streamed."""
    if not isinstance(split.arrays, columns.Records):
        yield from split.arrays["text"]
        return
    for _, chunk in _chunks(split):
        yield from chunk["text"]


def _chunks(split: Split, size: int = 4096) -> Iterator[tuple[slice, dict]]:
    """A streamed split's rows, `size` at a time: (their slice, their columns)."""
    for start in range(0, len(split), size):
        rows = slice(start, min(start + size, len(split)))
        yield rows, split.arrays.take(np.arange(rows.start, rows.stop))


def as_inputs(split: Split, tok, max_len: int, *, language_model: bool) -> Split:
    """The split's texts as token arrays: `windows` for a language model, else `examples`; on
    disk (`windows_on_disk`, `examples_on_disk`) when the split is streamed."""
    if isinstance(split.arrays, columns.Records):
        return (windows_on_disk if language_model else examples_on_disk)(split, tok, max_len)
    return (windows if language_model else examples)(split, tok, max_len)


def examples(split: Split, tok, max_len: int) -> Split:
    """One example a text: BOS then its first max_len - 1 tokens, padded; `token_mask` marks
    real tokens. For classifiers."""
    tokens, mask = tok.encode(list(split.arrays["text"]), max_len, add_bos=True)
    return Split(arrays={"tokens": tokens, "token_mask": mask, "label": split.arrays["label"]},
                 num_classes=split.num_classes, class_names=split.class_names)


def windows(split: Split, tok, max_len: int) -> Split:
    """The texts as one stream (each BOS ... EOS), cut into windows of max_len tokens: every
    token of every text is trained on, none is truncated away. For language models; the
    last window is padded and masked."""
    stream = np.concatenate([ids for ids in tok.encode_ids(list(split.arrays["text"]), add_bos=True,
                                                            add_eos=True)])
    count = -(-len(stream) // max_len)
    tokens = np.full(count * max_len, tok.pad_id, np.int32)
    tokens[: len(stream)] = stream
    mask = np.arange(count * max_len) < len(stream)
    return Split(arrays={"tokens": tokens.reshape(count, max_len), "token_mask": mask.reshape(count, max_len),
                         "label": np.zeros(count, np.int32)},
                 num_classes=tok.vocab_size, class_names=())


def windows_on_disk(split: Split, tok, max_len: int) -> Split:
    """`windows` of a streamed split, the same arrays, kept in files beside the prepared
    dataset and memory-mapped: the texts are tokenized a chunk at a time, once per split,
    tokenizer and max_len (later runs map the files)."""
    base = _derived_path(split.arrays, tok, f"windows{max_len}")
    with sources.exclusive(base + ".lock"):  # Parallel runs and processes write it once.
        if not os.path.exists(base + ".tokens"):
            with open(base + ".tokens.tmp", "wb") as f:
                for _, chunk in _chunks(split):
                    for ids in tok.encode_ids(list(chunk["text"]), add_bos=True, add_eos=True):
                        f.write(ids.astype(np.int32).tobytes())
                length = f.tell() // 4
                f.write(np.full(-length % max_len, tok.pad_id, np.int32).tobytes())
            with open(base + ".length", "w") as f:
                f.write(str(length))
            os.replace(base + ".tokens.tmp", base + ".tokens")  # Written last: marks it complete.
    with open(base + ".length") as f:
        length = int(f.read())
    count = -(-length // max_len)
    mask = _WindowMask(count, max_len, length)
    return Split(arrays={"tokens": columns.MappedArray(base + ".tokens", np.int32, (count, max_len)),
                         "token_mask": mask, "label": np.zeros(count, np.int32)},
                 num_classes=tok.vocab_size, class_names=())


class _WindowMask:
    """token_mask of windows cut from a stream of `length` tokens: True before the padding.
    Computed from row numbers, so a streamed corpus keeps no mask in memory or on disk."""

    dtype = np.dtype(bool)

    def __init__(self, count: int, max_len: int, length: int):
        self.shape, self._length = (count, max_len), length

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.arange(self.shape[0])[rows]
        return rows[..., None] * self.shape[1] + np.arange(self.shape[1]) < self._length


def examples_on_disk(split: Split, tok, max_len: int) -> Split:
    """`examples` of a streamed split, the same arrays, kept in files beside the prepared
    dataset and memory-mapped (see `windows_on_disk`)."""
    count = len(split)
    base = _derived_path(split.arrays, tok, f"examples{max_len}")
    shape = (count, max_len)
    with sources.exclusive(base + ".lock"):
        if not os.path.exists(base + ".tokens"):
            tokens = np.memmap(base + ".tokens.tmp", np.int32, "w+", shape=shape)
            mask = np.memmap(base + ".mask.tmp", bool, "w+", shape=shape)
            labels = np.memmap(base + ".label.tmp", np.int32, "w+", shape=(count,))
            for rows, chunk in _chunks(split):
                tokens[rows], mask[rows] = tok.encode(list(chunk["text"]), max_len, add_bos=True)
                labels[rows] = chunk["label"]
            for array in (tokens, mask, labels):
                array.flush()
            del tokens, mask, labels
            for part in ("mask", "label", "tokens"):  # Tokens last: marks the set complete.
                os.replace(f"{base}.{part}.tmp", f"{base}.{part}")
    return Split(arrays={"tokens": columns.MappedArray(base + ".tokens", np.int32, shape),
                         "token_mask": columns.MappedArray(base + ".mask", bool, shape),
                         "label": columns.MappedArray(base + ".label", np.int32, (count,))},
                 num_classes=split.num_classes, class_names=split.class_names)


def _derived_path(records: columns.Records, tok, kind: str) -> str:
    """Where token arrays made from `records` with `tok` are kept: named by the prepared files'
    and the tokenizer's fingerprints, so a changed corpus or tokenizer makes new ones."""
    digest = hashlib.sha256(tok.serialized()).hexdigest()[:12]
    directory = os.path.join(records.directory, "tokens")
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, f"{records.split}-{records.fingerprint}-{digest}-{kind}")
