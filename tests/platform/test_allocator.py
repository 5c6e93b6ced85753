import os
import subprocess
import sys

import pytest

from research.platform import allocator
from tests.conftest import ROOT

# Allocates and frees 200 MB, then prints how much of it the process still holds (MB).
PROGRAM = """
import numpy as np
{setup}
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e6
before = rss_mb()
block = np.ones(25_000_000)
del block
print(round(rss_mb() - before))
"""


def held_after_free(setup: str, **environ) -> int:
    env = {k: v for k, v in os.environ.items() if not allocator.user_has_settings({k: v})} | environ
    out = subprocess.run([sys.executable, "-c", PROGRAM.format(setup=setup)], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


@pytest.mark.skipif(not allocator.has_glibc(), reason="needs Linux with glibc")
def test_applied_settings_keep_freed_memory_for_reuse():
    applied = "from research import platform; platform.apply(cache=False)"
    assert held_after_free("import research") < 50  # glibc's default: a large block goes back.
    assert held_after_free(applied) > 150
    # A user's own malloc settings win: the allocator is left as it is.
    assert held_after_free(applied, MALLOC_TOP_PAD_="0") < 50
    assert held_after_free(applied, RESEARCH_KEEP_FREED_MEMORY="0") < 50


def test_user_settings_are_recognised():
    assert allocator.user_has_settings({"MALLOC_ARENA_MAX": "2"})
    assert allocator.user_has_settings({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"})
    assert not allocator.user_has_settings({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"})
    assert not allocator.keep_freed_memory({"MALLOC_TRIM_THRESHOLD_": "0"})
    assert not allocator.keep_freed_memory({"RESEARCH_KEEP_FREED_MEMORY": "0"})
