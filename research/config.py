"""Config helpers: the `:key=value` argument of config files, dotted overrides, sweep axes."""

import ast
import copy

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


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
    """A copy of `config` with dotted overrides ({"opt.lr": 3e-3}) set, with the same checks
    as command-line overrides: the key must exist and the value must fit its type."""
    config = copy.deepcopy(config)  # Keeps field types and the lock; nested dicts are not shared.
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                raise UserError(f"unknown config key {key!r}")
            node = node[part]
        if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
            raise UserError(f"unknown config key {key!r}")
        try:
            node[leaf] = value
        except (TypeError, ValueError) as e:
            raise UserError(f"config key {key!r} cannot take {value!r}: {e}") from e
    return config


def product(**axes) -> list[dict]:
    """Every combination: product(**{"opt.lr": [1e-3, 3e-3], "seed": range(2)}) gives 4 runs."""
    runs = [{}]
    for key, values in axes.items():
        runs = [{**run, key: value} for run in runs for value in values]
    return runs


def zipped(**axes) -> list[dict]:
    """Runs side by side: zipped(**{"opt.lr": [1e-3, 3e-3], "opt.warmup_steps": [0, 100]})."""
    lengths = {key: len(list(values)) for key, values in axes.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"zipped axes differ in length: {lengths}")
    return [dict(zip(axes, values, strict=True)) for values in zip(*axes.values(), strict=True)]
