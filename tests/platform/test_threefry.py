import os
import subprocess
import sys

import jax
import numpy as np

from research.platform import threefry


def test_threefry_lowering_gives_the_same_bits_unrolled_for_large_arrays_only():
    """The project's CPU lowering of threefry draws the bits JAX's own lowering does (checked in a
    process that does not apply it); a large array's rounds are unrolled (no loop left
    to compile), a small one keeps JAX's loop."""
    threefry.register_cpu_lowering()  # As platform.apply() does (conftest applies it too).
    small, large = (512, 512), (4, threefry.ROLLED_THREEFRY_MAX_WORDS)
    program = ("import jax, numpy as np\n"
               f"for shape in [{small}, {large}]:\n"
               "    bits = np.asarray(jax.random.bits(jax.random.key(7), shape), np.uint64)\n"
               "    print(int(bits.sum()), int(bits[-1, -1]))")
    environ = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    theirs = subprocess.run([sys.executable, "-c", program], env=environ, capture_output=True,
                            text=True, check=True).stdout.split()
    ours = []
    for shape in (small, large):
        bits = np.asarray(jax.random.bits(jax.random.key(7), shape), np.uint64)
        ours += [str(int(bits.sum())), str(int(bits[-1, -1]))]
    assert theirs == ours
    compiled = lambda shape: jax.jit(lambda k: jax.random.bits(k, shape)).lower(  # noqa: E731
        jax.random.key(7)).compile().as_text()
    assert " while(" in compiled(small) and " while(" not in compiled(large)
