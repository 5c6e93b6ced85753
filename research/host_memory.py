"""How the process's C allocator treats large buffers, so that XLA:CPU reuses its memory.

XLA:CPU allocates each run of an executable a buffer for all its temporaries (42 MB for the
Fashion-MNIST CNN's train step at batch 128, more for the Transformer's) with malloc, from
whichever thread runs it. glibc serves allocations over 32 MB, and in threads other than the
main one over 64 MB, with a fresh mmap and unmaps them when freed; below that it returns freed
memory at the top of its heaps to the system. Either way each step faulted in and zeroed tens of
megabytes anew: on the project's 2-core machine a third of the CNN step (train step examples/s
about 2,800 -> 3,800) and a sixth of the Transformer's (66 -> 80).

`keep_freed_memory` makes glibc keep what is freed for the next allocation: no mmap for large
blocks, no trimming, and one arena for all threads (a thread arena cannot hold a block larger
than 64 MB). The price is that the process keeps its peak host memory until it exits, which a
training process reaches again every step anyway. Only glibc has these settings (`mallopt`):
elsewhere this does nothing, as it does when the user has chosen: RESEARCH_KEEP_FREED_MEMORY=0
keeps glibc's defaults, and glibc's own settings (MALLOC_* variables, glibc.malloc.* in
GLIBC_TUNABLES) are left as they are. It touches host memory only, so accelerator runs are
unaffected. Written by hand because no library sets it.
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
