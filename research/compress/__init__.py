"""Compression methods as transforms of a run's parts.

A run is built from three parts, and a method wraps any of them: the model (quantization-aware
training wraps it with Qwix), the loss (distillation: the teacher's outputs in, KL and task
loss out) and the optimizer (pruning: an optax transformation whose masks live in the
optimizer state). A method may also name a run whose weights this run starts from (structured
pruning: the source's kept channels). The config selects the methods; research/run/experiment.py applies every
selected one, in the order of METHODS, and the train state, the step and the loop never learn
which. A new method is a module here with a `Method` and one entry in METHODS (or
`register(method)` from your own code), plus its config fields.
"""

from research.compress import distill, prune, qat, shrink
from research.compress.method import Context, Method, Parts
from research.errors import UserError

__all__ = ["METHODS", "Context", "Method", "Parts", "apply", "register", "reports", "selected",
           "start_method", "tokenizer_source"]


METHODS: list[Method] = [qat.METHOD, distill.METHOD, prune.METHOD, shrink.METHOD]


def register(method: Method) -> None:
    """Makes `method` apply to every run whose config selects it."""
    if any(m.name == method.name for m in METHODS):
        raise ValueError(f"compression method {method.name!r} is registered already")
    METHODS.append(method)


def selected(config) -> list[Method]:
    """The methods `config` selects; a config without a method's section selects it not (a run
    older than the method)."""
    return [method for method in METHODS if method.name in config and method.selected(config)]


def tokenizer_source(config) -> str:
    """The run whose tokenizer a selected method needs ("": none)."""
    return next(filter(None, (method.tokenizer_source(config) for method in selected(config))), "")


def start_method(config) -> Method | None:
    """The selected method whose source run this run starts from (None: none does)."""
    starting = [method for method in selected(config) if method.starts_from(config)]
    if len(starting) > 1:
        raise UserError(f"{' and '.join(m.name for m in starting)} each name a run to start from; "
                        "choose one")
    return starting[0] if starting else None


def apply(config, parts: Parts, context: Context) -> Parts:
    """`parts` wrapped by every method `config` selects."""
    for method in selected(config):
        parts = method.apply(config, parts, context)
    return parts


def reports(config, params, opt_state) -> dict:
    """What the selected methods add to a finished run's results.json."""
    out = {}
    for method in selected(config):
        out.update(method.report(params, opt_state))
    return out
