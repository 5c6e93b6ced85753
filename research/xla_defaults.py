"""Compiler settings the project makes by default.

XLA:CPU in the pinned jaxlib can hand fusions (dots, convolutions, elementwise, reductions) to
YNNPACK, by kind. Reductions only: a parameter's gradient is a sum over the batch (and
sequence, or image) axes, which XLA's own emitter runs as a reduce-window over strided rows,
one element at a time: 6 ms for the [32, 256, 512] sum behind the Transformer's MLP bias
gradient, 0.4 ms in YNNPACK. Train steps on 2 cores (scripts/bench.py, two alternating
rounds): MLP 156-171k -> 183-194k examples/s, CNN 3,080-3,780 -> 4,040-4,060, Transformer
81-84 -> 88-92. The other kinds stay with XLA: its Eigen convolutions run the CNN step about
1.35x faster than YNNPACK's, and YNNPACK's elementwise fusions halved the MLP step.
With several CPU devices in one process (`--xla_force_host_platform_device_count`,
JAX_NUM_CPU_DEVICES) YNNPACK stays off: 2 of 14 sharded bench runs hung with it. That hang was
most likely XLA:CPU's in-flight deadlock (docs/upstream/xla_cpu_inflight_deadlock.md), which
research.inflight now prevents, with or without YNNPACK.

XLA reads XLA_FLAGS when JAX starts its backend (the first computation, not `import jax`), so
this works as long as `research` is imported before anything runs. A flag the user already
put in XLA_FLAGS is left as they set it. Flags of the CPU compiler do not touch GPU or TPU
compilation. The flags are part of JAX's compilation-cache key, so a cached executable
compiled under other flags is never reused.

JAX lowers the threefry random-bit generator for CPU as a loop over its rounds, which XLA runs
as separate passes over the whole array of bits; for GPU it emits the rounds unrolled, which
XLA fuses into one pass. Dropout draws a bit per activation every step, so the loop made the
Transformer classifier's train step a third slower than without dropout on CPU; the unrolled
lowering takes it from about 49 to 60 examples/s. But XLA:CPU fuses the unrolled rounds into
every consumer, broadcasts included: attention's dropout mask, [L, L] shared by the batch and
heads, was recomputed for each of the [B, H, L, L] weights, twice a block (about 25 ms of a
390 ms step). So arrays of up to 2^18 words (a [512, 512] mask: 1 MiB, about this CPU's L2
cache) keep JAX's loop, whose output XLA keeps in memory, and larger ones are unrolled:
Transformer step about 394 -> 354 ms (medians of 4 alternating runs each; XLA:CPU ignores an
optimization barrier here, which was tried first). The bits are the same either way (it is the
same integer arithmetic); compilation takes longer. JAX has no public switch for this, hence
the private modules, checked by tests/test_xla_defaults.py against the pinned version.
"""

import os
import re

from research.errors import UserError

YNN_FUSIONS = "xla_cpu_experimental_ynn_fusion_type"
_applied = {}  # What apply() added to this process's XLA_FLAGS.


def cpu_devices(environ=os.environ) -> int:
    """The CPU devices a process started with `environ` has, as far as its environment says."""
    match = re.search(r"--xla_force_host_platform_device_count[= ](\d+)", environ.get("XLA_FLAGS", ""))
    counts = [int(match.group(1))] if match else []
    counts.append(int(environ.get("JAX_NUM_CPU_DEVICES") or -1))
    return max(1, *counts)


def defaults(environ=os.environ) -> dict[str, str]:
    """The flags research sets unless the user has: YNNPACK for reductions, off with several
    CPU devices."""
    return {YNN_FUSIONS: "reduce" if cpu_devices(environ) == 1 else ""}


def apply(environ=os.environ) -> str:
    """Adds each default the user has not set to XLA_FLAGS; returns the resulting value."""
    flags = environ.get("XLA_FLAGS", "")
    for name, value in defaults(environ).items():
        if f"--{name}=" not in flags and f"--{name} " not in f"{flags} ":
            flags = f"{flags} --{name}={value}".strip()
            if environ is os.environ:
                _applied[name] = value
    environ["XLA_FLAGS"] = flags
    return flags


def check_devices(devices) -> None:
    """Refuses several CPU devices in a process given YNNPACK reductions by apply(): that
    happens when the device count is set after `import research` (jax_num_cpu_devices), and
    such a process can hang in its first all-reduce."""
    if _applied.get(YNN_FUSIONS) and len(devices) > 1 and devices[0].platform == "cpu":
        raise UserError(
            f"this process has {len(devices)} CPU devices, set after `import research`, which turned "
            "on YNNPACK reductions for one device (they can hang XLA:CPU collectives); set "
            "JAX_NUM_CPU_DEVICES or XLA_FLAGS=--xla_force_host_platform_device_count before starting, "
            f"or XLA_FLAGS=--{YNN_FUSIONS}= to leave YNNPACK off")


ROLLED_THREEFRY_MAX_WORDS = 1 << 18


def lower_threefry_for_cpu() -> None:
    """Registers the CPU lowering of threefry described above: JAX's loop for arrays of up to
    ROLLED_THREEFRY_MAX_WORDS words, rounds unrolled above that. Called where train and
    eval steps are made (research.steps), before anything is traced; not on `import research`,
    which stays free of JAX so that `--help` is instant."""
    import math

    from jax._src.interpreters import mlir
    from jax._src.random import threefry2x32

    def lowering(ctx, *args, **params):
        unrolled = math.prod(ctx.avals_out[0].shape) > ROLLED_THREEFRY_MAX_WORDS
        rule = (threefry2x32._threefry2x32_lowering_rule if unrolled  # GPU's, rounds unrolled
                else threefry2x32._threefry2x32_cpu_lowering_rule)  # JAX's own for CPU, a loop
        return rule(ctx, *args, **params)

    mlir.register_lowering(threefry2x32.threefry2x32_p, lowering, platform="cpu")
