"""int8 quantization with Qwix: post-training (`experiments.quantize`) and quantization-aware
training (`config.quant.mode=qat`).

Post-training modes (`PTQ_MODES`), from a run's float checkpoint:
  w8           int8 weights of Dense and attention matmuls (per output channel), float
               activations; convolutions stay float (Qwix 0.1.8 quantizes a convolution only
               with its activations). Qwix dequantizes the weights before the matmul, so this
               is 4x smaller weights at float speed.
  w8a8         int8 weights and activations of every matmul and convolution, each activation
               scaled by its own absolute maximum at run time (dynamic); XLA runs s8 x s8 -> s32
               products.
  w8a8_static  as w8a8, with the matmuls' activation scales fixed beforehand by calibration on
               `calibration_batches` training batches (the first ones of the seed's order);
               convolutions keep dynamic scales (Qwix 0.1.8 cannot collect their statistics).
A quantized model is made again from the float checkpoint whenever it is used (quantization
and calibration are deterministic), so a workdir holds no second copy of the weights.

QAT trains the float parameters through Qwix's fake quantization (int8 weights and dynamic
int8 activations in the forward pass, straight-through gradients); the parameters have the
float model's tree, so checkpoints, resume and init_from are unchanged.
"""

import time

import jax
import numpy as np
import qwix

from research.errors import UserError

PTQ_MODES = ("w8", "w8a8", "w8a8_static")
MATMUL, CONV = ("dot_general",), ("conv_general_dilated",)


def ptq_rules(mode: str) -> list:
    if mode not in PTQ_MODES:
        raise UserError(f"unknown quantization mode {mode!r}; choose one of {list(PTQ_MODES)}")
    if mode == "w8":
        return [qwix.QuantizationRule(module_path=".*", weight_qtype="int8", op_names=MATMUL)]
    if mode == "w8a8":
        return [qwix.QuantizationRule(module_path=".*", weight_qtype="int8", act_qtype="int8")]
    return [qwix.QuantizationRule(module_path=".*", weight_qtype="int8", act_qtype="int8", op_names=CONV),
            qwix.QuantizationRule(module_path=".*", weight_qtype="int8", act_qtype="int8", op_names=MATMUL,
                                  act_static_scale=True)]


def qat_model(model, quant_config):
    """`model` trained through int8 fake quantization (`quant.bits` must be 8)."""
    if quant_config.bits != 8:
        raise UserError(f"quant.bits={quant_config.bits}; Qwix's int8 is the quantization supported")
    rule = qwix.QtRule(module_path=".*", weight_qtype="int8", act_qtype="int8")
    return qwix.quantize_model(model, qwix.QtProvider([rule]))


def calibrate(model, variables: dict, rules: list, batches: list[tuple]) -> dict:
    """Activation statistics (`quant_stats`) of `model` over `batches` of (x, inputs)."""
    calibrating = qwix.quantize_model(model, qwix.QtProvider(rules))
    x, inputs = batches[0]
    # Jitted: run eagerly, the init would compile each of the model's operations on its own.
    stats = jax.jit(lambda x, inputs: calibrating.init(jax.random.key(0), x, **inputs, train=False)[
        "quant_stats"])(x, inputs)

    @jax.jit
    def update(variables, stats, x, inputs):  # Closed over, the weights would be constants XLA folds.
        _, new = calibrating.apply({**variables, "quant_stats": stats}, x, **inputs, train=False,
                                   mutable=["quant_stats"])
        return new["quant_stats"]

    for x, inputs in batches:
        stats = update(variables, stats, x, inputs)
    return stats


def ptq(model, variables: dict, mode: str, calibration: list[tuple]) -> tuple:
    """(the quantized model, its variables): int8 params from the float `variables`."""
    rules = ptq_rules(mode)
    quantized = qwix.quantize_model(model, qwix.PtqProvider(rules))
    x, inputs = calibration[0]
    abstract = jax.eval_shape(lambda: quantized.init(jax.random.key(0), x, **inputs, train=False))
    stats = calibrate(model, variables, rules, calibration) if mode == "w8a8_static" else {}
    params = qwix.quantize_params(variables["params"], abstract["params"], stats)
    return quantized, {**variables, "params": params}


def weight_bytes(params) -> int:
    return sum(np.asarray(leaf).nbytes for leaf in jax.tree.leaves(params))


def examples_per_second(model, variables: dict, x, inputs: dict, repeats: int = 20) -> float:
    """Forward passes of one batch, jitted, after a warm-up: the median rate."""
    forward = jax.jit(lambda v, x, inputs: model.apply(v, x, **inputs, train=False))
    jax.block_until_ready(forward(variables, x, inputs))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(forward(variables, x, inputs))
        times.append(time.perf_counter() - start)
    return len(x) / float(np.median(times))
