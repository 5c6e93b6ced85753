"""Tiny Shakespeare: 1,115,394 characters of Shakespeare's plays (public domain), as one text.

`input.txt` beside this file is the "tiny Shakespeare" text of char-rnn and nanoGPT's
`shakespeare_char` (karpathy/char-rnn, data/tinyshakespeare/input.txt, md5
6fb458f1232090904fb40fe944165e91), shipped here because no package we can install carries it.
The split is nanoGPT's, contiguous: the first 90% of the characters train (1,003,854), the
last 10% are the test split (111,540; nanoGPT's "val"). Each split is one example, its text,
so a language model reads it as one unbroken stream.
"""

import hashlib
import os

import tensorflow_datasets as tfds

TEXT_FILE = os.path.join(os.path.dirname(__file__), "input.txt")
MD5 = "6fb458f1232090904fb40fe944165e91"
TRAIN_FRACTION = 0.9


def read_splits() -> dict[str, str]:
    """{"train": the first 90% of the characters, "test": the rest}."""
    with open(TEXT_FILE, "rb") as f:
        raw = f.read()
    if hashlib.md5(raw).hexdigest() != MD5:
        raise FileNotFoundError(f"{TEXT_FILE} is not the tiny Shakespeare text (md5 differs); restore it "
                                "from the repository (git checkout -- research/data/tiny_shakespeare)")
    text = raw.decode("utf-8")
    cut = int(len(text) * TRAIN_FRACTION)
    return {"train": text[:cut], "test": text[cut:]}


class TinyShakespeare(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "char-rnn's input.txt; nanoGPT's contiguous 90/10 split."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "text": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=("text",)),  # Language models ignore it.
            }),
            supervised_keys=("text", "label"),
            homepage="https://github.com/karpathy/char-rnn",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Shipped in this folder.
        return {split: self._generate_examples(split, text) for split, text in read_splits().items()}

    def _generate_examples(self, split, text):
        yield split, {"text": text, "label": 0}
