"""Post-training quantization of a restored run (research/compress/quantize.py's modes): the
int8 model of its float variables, calibrated on the run's own first training batches."""

from research.compress import quantize
from research.data import pipeline
from research.errors import UserError
from research.models import model_inputs

CALIBRATION_BATCHES = 8


def quantized_model(exp, variables: dict, mode: str, calibration: list[dict]) -> tuple:
    """(int8 model, its variables) of a restored classifier run's float `variables` (jax.Arrays,
    which Qwix quantizes), calibrated on `calibration` (`calibration_data`'s batches)."""
    quantize.ptq_rules(mode)
    if exp.task.predicts_tokens:
        raise UserError("this run trained a language model; post-training quantization here serves "
                        "classifiers")
    return quantize.ptq(exp.model, variables, mode, [model_inputs(batch) for batch in calibration])


def calibration_data(config, exp, count: int = CALIBRATION_BATCHES) -> list[dict]:
    """The first `count` training batches of the run's seed, as the data pipeline gives them:
    what int8 activation scales are calibrated on, by Qwix here and by onnxruntime's quantizer
    for an int8 ONNX export (research/export/)."""
    batches = pipeline.train_batches(exp.train_data.arrays, batch_size=config.data.batch_size,
                                     seed=config.seed)
    return [next(batches) for _ in range(count)]
