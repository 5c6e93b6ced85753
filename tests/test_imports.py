import os
import subprocess
import sys

from tests.conftest import ROOT

# Imports every module of research (and every config file) in a fresh process, then reports
# what changed: the environment, and whether a large random array still compiles to JAX's own
# threefry loop (the project's lowering unrolls it).
PROGRAM = """
import glob, importlib, os, pkgutil
before = dict(os.environ)
import research
modules = [m.name for m in pkgutil.walk_packages(research.__path__, "research.")]
for name in modules:
    importlib.import_module(name)
for path in sorted(glob.glob("configs/*.py")):
    importlib.import_module("configs." + os.path.basename(path)[:-3])
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
import jax
text = jax.jit(lambda k: jax.random.bits(k, (4, 1 << 18))).lower(jax.random.key(0)).compile().as_text()
print(len(modules), "changed:", changed, "loop:", " while(" in text)
"""


def test_importing_every_module_changes_nothing_in_the_process():
    environ = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    count, report = done.stdout.split(maxsplit=1)
    assert int(count) > 40  # The walk found the package's modules.
    assert report.strip() == "changed: [] loop: True"
