"""Process-wide settings, applied by a program with one call at start and never on import.

`apply()` is what every program in experiments/ and benchmarks/ calls first; a notebook
or a script of your own that wants the same speed calls it too, before its first JAX
computation. Each setting is in its own module, with the reason for it:

  xla_flags          XLA:CPU compiler flags, added to XLA_FLAGS (a flag you set wins)
  threefry           the CPU lowering of JAX's random-bit generator (same bits, fewer passes)
  allocator          glibc keeps freed memory for reuse (cannot be undone in the process)
  compilation_cache  JAX's persistent compilation cache
  signals            SIGTERM/SIGINT as a request to checkpoint and stop (used by the loop)
"""

from research.platform import allocator, compilation_cache, threefry, xla_flags


def apply(*, cache: bool = True) -> dict:
    """Applies every setting (the compilation cache only with `cache`: a benchmark of compile
    times turns it off); returns what each did."""
    return {
        "xla_flags": xla_flags.apply(),
        "threefry_cpu_lowering": threefry.register_cpu_lowering(),
        "allocator_keeps_freed_memory": allocator.keep_freed_memory(),
        "compilation_cache": compilation_cache.enable() if cache else None,
    }
