import os
import subprocess
import sys

from research import xla_defaults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_added_and_user_flags_kept():
    environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    flags = xla_defaults.apply(environ)
    assert flags == environ["XLA_FLAGS"]
    assert flags.startswith("--xla_force_host_platform_device_count=4 ")
    assert "--xla_cpu_experimental_ynn_fusion_type=" in flags
    assert xla_defaults.apply(environ) == flags  # Applying twice adds nothing.


def test_user_setting_wins():
    environ = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
    assert xla_defaults.apply(environ) == environ["XLA_FLAGS"]
    assert environ["XLA_FLAGS"].count("ynn_fusion_type") == 1


def test_importing_research_changes_what_xla_cpu_compiles():
    """The default takes effect in a process that imports research first, even after `import jax`."""
    program = ("import jax, jax.numpy as jnp, research; "
               "f = jax.jit(lambda x: jnp.tanh(x @ x).sum()); "
               "print('ynn' in f.lower(jnp.ones((64, 64))).compile().as_text())")
    environ = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", program], env=environ, cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[-1] == "False"
    environ["XLA_FLAGS"] = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"
    out = subprocess.run([sys.executable, "-c", program], env=environ, cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[-1] == "True"
