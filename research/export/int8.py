"""A run's int8 model after training: Qwix's post-training quantization of its float variables
(research/train/quantize.py's modes), and the training batches its calibration reads, which
onnxruntime's quantizer reads too for an int8 ONNX export."""

from research import tasks
from research.data import pipeline
from research.errors import UserError
from research.models import model_inputs
from research.train import quantize

CALIBRATION_BATCHES = 8


def quantized_model(exp, variables: dict, mode: str, calibration: list[dict]) -> tuple:
    """(int8 model, its variables) of a restored classifier run's float `variables` (jax.Arrays,
    which Qwix quantizes), calibrated on `calibration` (`calibration_data`'s batches)."""
    quantize.ptq_rules(mode)
    if isinstance(exp.task, tasks.TokenPrediction):
        raise UserError("this run trained a language model; post-training quantization here serves "
                        "classifiers")
    return quantize.ptq(exp.model, variables, mode, [model_inputs(batch) for batch in calibration])


def calibration_data(config, exp, count: int = CALIBRATION_BATCHES) -> list[dict]:
    """The first `count` training batches of the run's seed, as the data pipeline gives them."""
    batches = pipeline.train_batches(exp.train_data.arrays, batch_size=config.data.batch_size,
                                     seed=config.seed)
    return [next(batches) for _ in range(count)]
