"""signature.json, which describes an export to whoever runs it: the model's inputs by the kind
of data it reads, and reading it back."""

import json
import os

from research.errors import UserError

# What each kind of input is, for whoever prepares it.
PREPROCESSING = {
    "image": "uint8 pixels [B, H, W, C] as stored (0-255); the module divides by 255",
    "signal": "float32 signals [B, L, C] as the dataset stores them",
    "features": "float32 features [B, D] as the dataset stores them",
    "tokens": "int32 SentencePiece ids [B, L] of tokenizer.model: BOS then the text's first L-1 "
              "pieces, padded with 0; token_mask [B, L] is True on real tokens",
}
INPUT_KEYS = {"image": ("image",), "signal": ("signal",), "features": ("features",),
              "tokens": ("tokens", "token_mask")}


def input_names(signature: dict) -> list[str]:
    return [spec["name"] for spec in signature["inputs"]]


def read_signature(directory: str) -> dict:
    path = os.path.join(directory, "signature.json")
    if not os.path.exists(path):
        raise UserError(f"{directory} has no signature.json; write it with experiments.export")
    with open(path) as f:
        try:
            signature = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{path} is not JSON ({e}): the export is damaged; write it again with "
                            "experiments.export") from e
    if not isinstance(signature, dict):
        raise UserError(f"{path} is not an export's signature (not a JSON object); write it again with "
                        "experiments.export")
    return signature
