import ast
import os
import re
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


def research_imports() -> dict[str, set[str]]:
    """Each module of research and the modules of research it imports, anywhere in its code."""
    modules = {}
    for directory, _, files in os.walk(os.path.join(ROOT, "research")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".").removesuffix(".__init__")
                modules[module] = path
    graph = {}
    for module, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
        graph[module] = {m for m in imported if m in modules and m != module}
    return graph


def test_no_import_cycles():
    graph, finished, cycles = research_imports(), set(), []

    def visit(module, path):
        for imported in sorted(graph[module]):
            if imported in path:
                cycles.append(path[path.index(imported):] + [imported])
            elif imported not in finished:
                visit(imported, path + [imported])
        finished.add(module)

    for module in sorted(graph):
        visit(module, [module])
    assert len(graph) > 40 and cycles == []


def imports_of(package: str) -> set[str]:
    """The modules of research that the modules of `package` import."""
    return {imported for module, modules in research_imports().items()
            if module == package or module.startswith(package + ".") for imported in modules}


def test_layers_only_point_down():
    """programs -> serve/sweeps -> train -> export -> run -> compress -> data/models/parallel."""
    below = {  # What a package must not import: the layers above it.
        "research.serve": ("research.train", "research.sweeps"),
        "research.export": ("research.serve", "research.train", "research.sweeps"),
        "research.run": ("research.train", "research.serve", "research.sweeps"),
        "research.compress": ("research.run", "research.train", "research.serve", "research.sweeps"),
        "research.parallel": ("research.sweeps", "research.train", "research.run", "research.serve"),
        "research.models": ("research.train", "research.run", "research.compress"),
        "research.data": ("research.train", "research.run", "research.compress"),
    }
    wrong = {package: sorted(m for m in imports_of(package) if m.startswith(above))
             for package, above in below.items()}
    assert {package: found for package, found in wrong.items() if found} == {}


def test_the_core_of_training_names_no_compression_method():
    core = ("research/train/steps.py", "research/train/state.py", "research/train/loop.py")
    pattern = re.compile(r"teacher|\bmasks?\b|prun|distil|\bqat\b|quant", re.IGNORECASE)
    found = {path: pattern.findall(open(os.path.join(ROOT, path)).read()) for path in core}
    assert {path: words for path, words in found.items() if words} == {}
