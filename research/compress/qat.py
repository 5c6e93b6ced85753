"""Quantization-aware training (`config.quant.mode=qat`): the model wrapped by Qwix's int8 fake
quantization (research/compress/quantize.py); Qwix is imported only by runs that use it."""

import dataclasses

from research.compress.method import Method
from research.errors import UserError

MODES = ("", "qat")


@dataclasses.dataclass(frozen=True)
class QatMethod(Method):
    name: str = "quant"
    vectorizable: bool = True

    def selected(self, config) -> bool:
        mode = config.quant.mode
        if mode not in MODES:
            raise UserError(f"quant.mode={mode!r}; use qat, or '' (post-training quantization is "
                            "experiments.quantize)")
        return mode == "qat"

    def apply(self, config, parts, context):
        import research.compress.quantize as quantize  # Qwix, only for runs that use it.

        return dataclasses.replace(parts, model=quantize.qat_model(parts.model, config.quant))


METHOD = QatMethod()
