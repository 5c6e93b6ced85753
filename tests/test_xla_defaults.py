import json
import os
import subprocess
import sys

import pytest

from research import xla_defaults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_added_and_user_flags_kept():
    environ = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
    flags = xla_defaults.apply(environ)
    assert flags == environ["XLA_FLAGS"]
    assert flags == "--xla_dump_to=/tmp/x --xla_cpu_experimental_ynn_fusion_type=reduce"
    assert xla_defaults.apply(environ) == flags  # Applying twice adds nothing.


def test_several_cpu_devices_keep_ynnpack_off():
    for environ in ({"XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
                    {"XLA_FLAGS": "", "JAX_NUM_CPU_DEVICES": "2"}):
        assert xla_defaults.apply(environ).endswith("--xla_cpu_experimental_ynn_fusion_type=")
    assert xla_defaults.cpu_devices({"JAX_NUM_CPU_DEVICES": "1"}) == 1


def test_devices_added_after_import_are_refused():
    """A device count set after `import research` finds YNNPACK reductions on: make_mesh stops
    with one clear line instead of risking a hung all-reduce."""
    program = ("import research, jax; from research import sharding; "
               "jax.config.update('jax_num_cpu_devices', 2); sharding.make_mesh()")
    environ = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    done = subprocess.run([sys.executable, "-c", program], env=environ, cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode != 0
    assert "UserError: this process has 2 CPU devices, set after `import research`" in done.stderr


def test_user_setting_wins():
    environ = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
    assert xla_defaults.apply(environ) == environ["XLA_FLAGS"]
    assert environ["XLA_FLAGS"].count("ynn_fusion_type") == 1


def test_importing_research_changes_what_xla_cpu_compiles():
    """The default takes effect in a process that imports research first, even after `import
    jax`: reductions go to YNNPACK, dots stay with XLA; the user's own setting wins."""
    program = ("import jax, jax.numpy as jnp, research; x = jnp.ones((64, 64)); "
               "compiled = lambda f: jax.jit(f).lower(x).compile().as_text(); "
               "print('ynn' in compiled(lambda x: x.sum(0)), 'ynn' in compiled(lambda x: x @ x))")
    environ = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}

    def ynn_fusions(xla_flags=None) -> list[str]:
        if xla_flags is not None:
            environ["XLA_FLAGS"] = xla_flags
        return subprocess.run([sys.executable, "-c", program], env=environ, cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.split()[-2:]

    assert ynn_fusions() == ["True", "False"]
    assert ynn_fusions("--xla_cpu_experimental_ynn_fusion_type=") == ["False", "False"]
    assert ynn_fusions("--xla_force_host_platform_device_count=2") == ["False", "False"]
    assert ynn_fusions("--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT") == [
        "False", "True"]


def test_threefry_lowering_gives_the_same_bits_unrolled_for_large_arrays_only():
    """research's CPU lowering of threefry draws the bits JAX's own lowering does (checked in a
    process that does not import research); a large array's rounds are unrolled (no loop left
    to compile), a small one keeps JAX's loop."""
    import jax
    import numpy as np

    xla_defaults.lower_threefry_for_cpu()  # As importing research.steps does.
    small, large = (512, 512), (4, xla_defaults.ROLLED_THREEFRY_MAX_WORDS)
    program = ("import jax, numpy as np\n"
               f"for shape in [{small}, {large}]:\n"
               "    bits = np.asarray(jax.random.bits(jax.random.key(7), shape), np.uint64)\n"
               "    print(int(bits.sum()), int(bits[-1, -1]))")
    environ = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    theirs = subprocess.run([sys.executable, "-c", program], env=environ, capture_output=True,
                            text=True, check=True).stdout.split()
    ours = []
    for shape in (small, large):
        bits = np.asarray(jax.random.bits(jax.random.key(7), shape), np.uint64)
        ours += [str(int(bits.sum())), str(int(bits[-1, -1]))]
    assert theirs == ours
    compiled = lambda shape: jax.jit(lambda k: jax.random.bits(k, shape)).lower(  # noqa: E731
        jax.random.key(7)).compile().as_text()
    assert " while(" in compiled(small) and " while(" not in compiled(large)


def test_one_device_with_the_defaults_trains_to_the_same_numbers(digits_config, tfds_dir, tmp_path):
    """A one-device run under research's flags (its own process, so YNNPACK reductions: at
    batch 512 the digits step has 3) ends where the same run under XLA's own emitters does (this
    process has 4 devices, so YNNPACK is off here), up to the order of float sums."""
    from research import train

    steps = ["--config.train.steps=30", "--config.data.batch_size=512", "--config.mesh.num_devices=1"]
    environ = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run(
        [sys.executable, "-m", "experiments.train", "--config=configs/digits_mlp.py", *steps,
         f"--config.data.tfds_dir={tfds_dir}", f"--workdir={tmp_path / 'defaults'}"],
        env=environ, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "defaults" / "results.json") as f:
        theirs = json.load(f)
    digits_config.train.steps, digits_config.data.batch_size, digits_config.mesh.num_devices = 30, 512, 1
    ours = train.train_and_evaluate(digits_config, str(tmp_path / "xla"))
    assert theirs["eval/test/loss"] == pytest.approx(ours["eval/test/loss"], rel=1e-4)
    assert theirs["eval/test/confusion_matrix"] == ours["eval/test/confusion_matrix"]
