"""Config helpers: the `:key=value` argument of config files."""

import ast

import ml_collections

from research.errors import UserError


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """Parses `"size=S,smoke=True"` (the text after the colon in --config=file.py:...) over
    `defaults`; values are Python literals, else strings. Unknown keys are an error."""
    result = ml_collections.ConfigDict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, _, text = item.partition("=")
        if key not in defaults:
            raise UserError(f"unknown config argument {key!r}; this config takes {sorted(defaults)}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        result[key] = value
    return result
