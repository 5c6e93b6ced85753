"""Text datasets as model inputs: the run's tokenizer and the token arrays made with it.

A run's tokenizer is trained on the training split only and saved with the run
(`<workdir>/tokenizer.model`), so evaluation and generation read text exactly as training
did. Which one a run uses, in order: the one already in its workdir (a resumed or finished
run); the `init_from` run's (its embeddings index that vocabulary); else one trained on the
training texts, kept beside the prepared dataset so every run of that dataset and vocabulary
size shares it (training is deterministic, so this only saves time).
"""

import os
import shutil

import numpy as np

from research.data import sources, tokenizer
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
    cached = os.path.join(builder.data_dir, f"tokenizer_vocab{data_config.vocab_size}.model")
    with sources.exclusive(cached + ".lock"):  # Parallel sweep runs train it once.
        if not os.path.exists(cached):
            tokenizer.train(list(train_texts), data_config.vocab_size, cached)
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
