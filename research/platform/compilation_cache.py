"""JAX's persistent compilation cache, on for every program: a resumed run, the next run of a
sweep or an evaluation after training loads its compiled steps from disk instead of compiling
them again (seconds per step function on CPU, minutes for large models on accelerators).

RESEARCH_COMPILATION_CACHE=DIR picks the directory (default ~/.cache/research/jax); set it
to "" to turn the cache off. The cache key covers the program, compiler options, devices and
JAX version, so a hit runs the same executable a fresh compile would produce.
"""

import os

import jax

DEFAULT_DIR = os.path.join("~", ".cache", "research", "jax")
MAX_BYTES = 2 << 30  # Least recently used entries go beyond this.


def enable(directory: str | None = None, min_compile_time_s: float | None = None) -> str | None:
    """Turns the cache on in `directory` (default: $RESEARCH_COMPILATION_CACHE or DEFAULT_DIR)
    for compilations longer than `min_compile_time_s` (default: JAX's own setting
    $JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS where set, else 0.5); returns the directory, or
    None when turned off."""
    if min_compile_time_s is None:
        min_compile_time_s = float(os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", 0.5))
    if directory is None:
        directory = os.environ.get("RESEARCH_COMPILATION_CACHE", DEFAULT_DIR)
    if not directory:
        return None
    directory = os.path.expanduser(directory)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time_s)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return directory
