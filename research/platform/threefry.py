"""The CPU lowering of JAX's threefry random-bit generator: the same bits, fewer passes.

JAX lowers threefry for CPU as a loop over its rounds (a pass over the whole array of bits per
round) and for GPU with the rounds unrolled, which XLA fuses into one pass; dropout draws bits
for every activation every step. XLA:CPU, though, fuses unrolled rounds into every consumer,
and would recompute a broadcast dropout mask for each element it is broadcast to. So arrays
of up to ROLLED_THREEFRY_MAX_WORDS words keep JAX's loop and larger ones are unrolled. JAX has
no public switch for this, hence its private modules, checked against the pinned version by
tests/platform/test_threefry.py. Measurements: docs/performance.md.
"""

import math

ROLLED_THREEFRY_MAX_WORDS = 1 << 18  # A [512, 512] mask: 1 MiB, about an L2 cache.


def register_cpu_lowering() -> bool:
    """Registers the lowering for the CPU platform (GPU and TPU keep theirs); returns True.
    Applies to what is traced afterwards, in this process, until it exits."""
    from jax._src.interpreters import mlir
    from jax._src.random import threefry2x32

    def lowering(ctx, *args, **params):
        unrolled = math.prod(ctx.avals_out[0].shape) > ROLLED_THREEFRY_MAX_WORDS
        rule = (threefry2x32._threefry2x32_lowering_rule if unrolled  # GPU's, rounds unrolled
                else threefry2x32._threefry2x32_cpu_lowering_rule)  # JAX's own for CPU, a loop
        return rule(ctx, *args, **params)

    mlir.register_lowering(threefry2x32.threefry2x32_p, lowering, platform="cpu")
    return True
