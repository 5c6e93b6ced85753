"""Shared fixtures. The test process sees 4 CPU devices, so sharded and single-device runs
can be compared in one process (a mesh may use any number of them), and has the process
settings every program applies."""

import functools
import os
import shutil
import signal
import subprocess
import sys

# The suite's programs are small and run few steps, so compiling them is most of its time:
# LLVM's -O1 instead of XLA:CPU's default -O2 compiles them in about two thirds of the time
# (e.g. a conv kernel's initializer, [3, 3, 8, 16] random bits, in 1 s against 17-20 s) and
# runs them a little slower. Programs run by users keep -O2. Every process the tests start
# inherits it; tests that set XLA_FLAGS for a child process add it (`suite_xla_flags`).
SUITE_XLA_FLAGS = "--xla_backend_optimization_level=1"


def suite_xla_flags(devices: int) -> str:
    """XLA_FLAGS for a process the tests start with `devices` CPU devices."""
    return f"--xla_force_host_platform_device_count={devices} {SUITE_XLA_FLAGS}"


os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {suite_xla_flags(4)}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

from configs import digits_mlp  # noqa: E402
from research import platform  # noqa: E402

platform.apply(cache=False)  # As every program does (the session's cache is set below).

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker more than the cores. Many tests wait on processes they started
    (launchers, Ray, signals, a killed run's rerun), so a spare worker keeps the cores busy: on
    2 cores the suite took 742 s with 2 workers and 613 s with 3."""
    return (os.cpu_count() or 1) + 1


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    """One persistent compilation cache for the session, in-process and for the programs the
    tests start: a test that trains, stops and resumes compiles each step once. pytest-xdist's
    workers share it (JAX locks the cache's files while it reads and writes them)."""
    from research.platform import compilation_cache

    directory = shared_directory(tmp_path_factory, "jax_cache")
    os.environ["RESEARCH_COMPILATION_CACHE"] = directory
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # Every compilation, here and there.
    compilation_cache.enable(directory)
    return directory


def shared_directory(tmp_path_factory, name: str) -> str:
    """A directory for the whole test session, shared by pytest-xdist's workers (each worker's
    base temporary directory is inside the session's)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    directory = str(root / name)
    os.makedirs(directory, exist_ok=True)
    return directory


def shared_run(tmp_path_factory, name: str, train) -> str:
    """A run's workdir made once for the whole test session: the first pytest-xdist worker to ask
    calls `train(workdir)`, the others wait for it and read the same workdir."""
    from research.data.sources import exclusive

    directory = shared_directory(tmp_path_factory, name)
    workdir, done = os.path.join(directory, "run"), os.path.join(directory, "done")
    with exclusive(directory + ".lock"):
        if not os.path.exists(done):
            shutil.rmtree(workdir, ignore_errors=True)  # What a failed attempt left.
            train(workdir)
            open(done, "w").close()
    return workdir


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """One TFDS data dir for the session: each dataset is prepared once (research.data.sources
    serialises concurrent preparations with a file lock)."""
    return shared_directory(tmp_path_factory, "tfds")


@pytest.fixture
def digits_config(tfds_dir):
    """The tiny digits MLP config, reading data from the session's TFDS dir."""
    config = digits_mlp.get_config()
    config.data.tfds_dir = tfds_dir
    return config


def run_program(module: str, *flags: str, timeout: float = 300, **popen_kwargs):
    """Runs `python -m module flags...` from the repo root; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", module, *flags], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, **popen_kwargs)


class StopAfterCalls:
    """Stands in for research.platform.signals.StopRequest: reports SIGTERM once the loop has
    made `calls` train-step calls (steps, with the default train.steps_per_call=1)."""

    def __init__(self, calls: int):
        self.asked, self.calls, self.signum = 0, calls, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def requested(self, step: int) -> bool:
        self.asked += 1
        if self.asked > self.calls:
            self.signum = signal.SIGTERM
        return self.signum is not None


def jit_init(model, *args, **kwargs):
    """`model.init(*args, **kwargs)` as one compiled program: run eagerly, each operation of the
    init (every initializer's random bits included) compiles on its own."""
    return jax.jit(functools.partial(model.init, **kwargs))(*args)
