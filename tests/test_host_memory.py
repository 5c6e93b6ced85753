import os
import subprocess
import sys

import pytest

from research import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Allocates and frees 200 MB, then prints how much of it the process still holds (MB).
PROGRAM = """
import {module}, numpy as np
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e6
before = rss_mb()
block = np.ones(25_000_000)
del block
print(round(rss_mb() - before))
"""


def held_after_free(module: str, **environ) -> int:
    env = {k: v for k, v in os.environ.items() if not host_memory.user_has_settings({k: v})} | environ
    out = subprocess.run([sys.executable, "-c", PROGRAM.format(module=module)], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


@pytest.mark.skipif(not host_memory.has_glibc(), reason="needs Linux with glibc")
def test_importing_research_keeps_freed_memory_for_reuse():
    assert held_after_free("os") < 50  # glibc's default: a large block goes back to the system.
    assert held_after_free("research") > 150
    # A user's own malloc settings win: research leaves the allocator as it is.
    assert held_after_free("research", MALLOC_TOP_PAD_="0") < 50
    assert held_after_free("research", RESEARCH_KEEP_FREED_MEMORY="0") < 50


def test_user_settings_are_recognised():
    assert host_memory.user_has_settings({"MALLOC_ARENA_MAX": "2"})
    assert host_memory.user_has_settings({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"})
    assert not host_memory.user_has_settings({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"})
    assert not host_memory.keep_freed_memory({"MALLOC_TRIM_THRESHOLD_": "0"})
    assert not host_memory.keep_freed_memory({"RESEARCH_KEEP_FREED_MEMORY": "0"})
