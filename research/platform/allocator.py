"""glibc keeps freed memory for reuse, so XLA:CPU does not fault in and zero its buffers anew.

XLA:CPU allocates each run of an executable one buffer for its temporaries (tens of MB for a
CNN step) with malloc. glibc serves blocks that large with a fresh mmap and unmaps them when
freed, and trims freed memory at the top of its heaps, so every step paid for new pages.
`keep_freed_memory` sets glibc's `mallopt` to keep them: no mmap for large blocks, no trimming,
one arena. The process then keeps its peak host memory until it exits, and this cannot be
undone in the process. Only glibc has these settings; elsewhere, or when the user has chosen
(RESEARCH_KEEP_FREED_MEMORY=0, MALLOC_* variables, glibc.malloc.* tunables), nothing changes.
Written by hand because no library sets it. Measurements: docs/performance.md.
"""

import ctypes
import ctypes.util
import os
import platform

# mallopt's parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
# mallopt takes an int: the largest threshold it can be given.
INT_MAX = 2**31 - 1
SETTINGS = {M_TRIM_THRESHOLD: INT_MAX, M_MMAP_THRESHOLD: INT_MAX, M_ARENA_MAX: 1}


def user_has_settings(environ=os.environ) -> bool:
    """True when the user chose for themselves: RESEARCH_KEEP_FREED_MEMORY=0 (glibc's default
    behaviour), or glibc's own settings (MALLOC_* variables, glibc.malloc.* tunables)."""
    return (environ.get("RESEARCH_KEEP_FREED_MEMORY") == "0"
            or any(name.startswith("MALLOC_") for name in environ)
            or "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""))


def has_glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def keep_freed_memory(environ=os.environ) -> bool:
    """Applies SETTINGS through glibc's mallopt; returns whether it did."""
    if not has_glibc() or user_has_settings(environ):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return all(libc.mallopt(parameter, value) == 1 for parameter, value in SETTINGS.items())
