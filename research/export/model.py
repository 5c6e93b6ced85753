"""What an export holds: a classifier run's model at a checkpoint, in this process, as a function
of the dataset's raw arrays to class probabilities, with its signature."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from research import tasks
from research import workdir as workdir_lib
from research.errors import UserError
from research.export.signature import INPUT_KEYS, PREPROCESSING, input_names
from research.models import model_inputs
from research.run import experiment, restore

CHECK_ROWS = 256  # Test rows an export is checked on.


@dataclasses.dataclass
class Model:
    """A run's checkpoint ready for inference: `probabilities(batch)` on host arrays."""

    signature: dict
    probabilities_fn: object  # batch dict -> [B, K] probabilities (a jitted JAX function)
    exp: experiment.Experiment
    traceable: object = None  # The same function unjitted, for converters that trace it.
    float_traceable: object = None  # An int8 model's float function (the ONNX route's input).
    calibration: list = dataclasses.field(default_factory=list)  # An int8 model's batches.

    def probabilities(self, batch: dict) -> np.ndarray:
        return np.asarray(self.probabilities_fn({k: batch[k] for k in input_names(self.signature)}))


def load(workdir: str, checkpoint_name: str = "best", quantized: str = "") -> Model:
    """The run's model at `checkpoint_name` (best, latest or a step), on one device; with
    `quantized` (a research/compress/quantize.py PTQ mode), its int8 model."""
    config = workdir_lib.load_config(workdir)
    if tasks.for_model(config.model.name, 0, config.task).predicts_tokens:
        raise UserError(f"{workdir} trained a language model; export and predict serve classifiers "
                        "(sample from it with experiments.generate)")
    run = restore.restore(workdir, checkpoint_name, one_device=True)
    config, exp, step, variables = run.config, run.experiment, run.step, run.variables
    params = jax.device_get(variables["params"])
    binary = isinstance(exp.task, tasks.BinaryClassification)

    def probabilities_of(model, variables):
        def probabilities(batch):
            x, inputs = model_inputs(batch)
            logits = model.apply(variables, x, **inputs, train=False)
            if binary:  # One logit: P(class 1); both classes' probabilities are returned.
                p1 = jax.nn.sigmoid(logits[:, 0])
                return jnp.stack([1.0 - p1, p1], axis=-1)
            return jax.nn.softmax(logits, axis=-1)
        return probabilities

    # The float variables are copied to the host only for the float model's own export; an
    # int8 export traces the float model (its ONNX route) from the device arrays.
    float_probabilities = probabilities_of(exp.model, variables if quantized
                                           else jax.device_get(variables))
    probabilities, calibration = float_probabilities, []
    if quantized:
        from research.compress import ptq as int8  # Qwix, only for int8 models.

        calibration = int8.calibration_data(config, exp)
        probabilities = probabilities_of(*int8.quantized_model(exp, variables, quantized, calibration))

    kind = next(k for k, names in INPUT_KEYS.items() if names[0] in exp.eval_data.arrays)
    arrays = exp.eval_data.arrays
    signature = {
        "workdir": os.path.abspath(workdir), "checkpoint": checkpoint_name, "step": step,
        "model": config.model.name, "task": "binary" if binary else "classification",
        "kind": kind,
        "inputs": [{"name": name, "dtype": np.dtype(arrays[name].dtype).name,
                    "shape": [None, *np.shape(arrays[name][0])]} for name in INPUT_KEYS[kind]],
        "output": {"name": "probabilities", "dtype": "float32",
                   "shape": [None, len(exp.eval_data.class_names)]},
        "preprocessing": PREPROCESSING[kind],
        "class_names": list(exp.eval_data.class_names),
        "quantized": quantized or None,
        # Pruned runs' zeros are stored like any weight; `nonzero` counts what pruning left.
        "parameters": {"total": int(sum(np.size(p) for p in jax.tree.leaves(params))),
                       "nonzero": int(sum(np.count_nonzero(p) for p in jax.tree.leaves(params)))},
    }
    if kind == "tokens":
        signature.update(tokenizer="tokenizer.model", max_len=config.data.max_len)
    return Model(signature, jax.jit(probabilities), exp, probabilities,
                 float_traceable=float_probabilities if quantized else None, calibration=calibration)


def test_batch(model: Model, rows: int = CHECK_ROWS) -> dict:
    """The first `rows` rows of the run's evaluation split, as the model's inputs."""
    arrays = model.exp.eval_data.arrays
    count = min(rows, len(arrays["label"]))
    return {name: np.asarray(arrays[name][np.arange(count)]) for name in input_names(model.signature)}
