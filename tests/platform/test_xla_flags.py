import json
import os
import subprocess
import sys

import pytest

from research.platform import xla_flags
from tests.conftest import ROOT


def test_defaults_added_and_user_flags_kept():
    environ = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
    flags = xla_flags.apply(environ)
    assert flags == environ["XLA_FLAGS"]
    assert flags == "--xla_dump_to=/tmp/x --xla_cpu_experimental_ynn_fusion_type=reduce"
    assert xla_flags.apply(environ) == flags  # Applying twice adds nothing.


def test_several_cpu_devices_keep_ynnpack_off():
    for environ in ({"XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
                    {"XLA_FLAGS": "", "JAX_NUM_CPU_DEVICES": "2"}):
        assert xla_flags.apply(environ).endswith("--xla_cpu_experimental_ynn_fusion_type=")
    assert xla_flags.cpu_devices({"JAX_NUM_CPU_DEVICES": "1"}) == 1


def test_several_cpu_devices_get_two_pool_threads_a_device():
    environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    xla_flags.apply(environ)
    assert environ["PJRT_NPROC"] == str(max(os.cpu_count(), 8))
    one_device, own_choice = {"XLA_FLAGS": ""}, {"JAX_NUM_CPU_DEVICES": "2", "PJRT_NPROC": "3"}
    xla_flags.apply(one_device)
    xla_flags.apply(own_choice)
    assert "PJRT_NPROC" not in one_device and own_choice["PJRT_NPROC"] == "3"


def test_devices_added_after_import_are_refused():
    """A device count set after platform.apply() finds YNNPACK reductions on: make_mesh stops
    with one clear line."""
    program = ("import jax; from research import platform; from research.parallel import sharding; "
               "platform.apply(cache=False); "
               "jax.config.update('jax_num_cpu_devices', 2); sharding.make_mesh()")
    environ = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    done = subprocess.run([sys.executable, "-c", program], env=environ, cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode != 0
    assert "UserError: this process has 2 CPU devices, set after research.platform.apply()" in done.stderr


def test_user_setting_wins():
    environ = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
    assert xla_flags.apply(environ) == environ["XLA_FLAGS"]
    assert environ["XLA_FLAGS"].count("ynn_fusion_type") == 1


def test_applied_flags_change_what_xla_cpu_compiles():
    """The default takes effect in a process that applies the settings after `import jax`:
    reductions go to YNNPACK, dots stay with XLA; the user's own setting wins."""
    program = ("import jax, jax.numpy as jnp; from research import platform; platform.apply(cache=False); "
               "x = jnp.ones((64, 64)); "
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


def test_one_device_with_the_defaults_trains_to_the_same_numbers(digits_config, tfds_dir, tmp_path):
    """A one-device run under research's flags (its own process, so YNNPACK reductions: at
    batch 512 the digits step has 3) ends where the same run under XLA's own emitters does (this
    process has 4 devices, so YNNPACK is off here), up to the order of float sums."""
    from research.train import loop

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
    ours = loop.train_and_evaluate(digits_config, str(tmp_path / "xla"))
    assert theirs["eval/test/loss"] == pytest.approx(ours["eval/test/loss"], rel=1e-4)
    assert theirs["eval/test/confusion_matrix"] == ours["eval/test/confusion_matrix"]
