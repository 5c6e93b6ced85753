import glob
import os

import pytest

from research import config as config_lib
from research.errors import UserError
from tests.conftest import ROOT, run_program

CONFIG_FILES = sorted(glob.glob(os.path.join(ROOT, "configs", "[!_]*.py")))
CONFIG_FILES = [f for f in CONFIG_FILES if not f.endswith("common.py")]


def test_parse_arg_reads_literals_and_strings():
    args = config_lib.parse_arg("smoke=True,size=S,steps=3", smoke=False, size="B", steps=0)
    assert (args.smoke, args.size, args.steps) == (True, "S", 3)


def test_parse_arg_rejects_unknown_keys():
    with pytest.raises(UserError, match="unknown config argument 'sizee'"):
        config_lib.parse_arg("sizee=S", size="B")


@pytest.mark.parametrize("path", CONFIG_FILES, ids=os.path.basename)
def test_every_config_has_the_base_fields_and_a_command_in_its_docstring(path):
    import importlib.util

    from configs import common

    spec = importlib.util.spec_from_file_location("config_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    base = common.base_config()
    for group in ("data", "opt", "train", "eval", "mesh"):
        assert set(config[group].keys()) == set(base[group].keys()), group
    assert "python -m experiments.train" in module.__doc__
    assert module.get_sweep("lr")


@pytest.mark.parametrize("override,message", [
    ("--config.opt.lrr=0.1", "lrr"),
    ("--config.opt.lr=fast", "lr"),
    ("--config.train.steps=1.5", "steps"),
])
def test_bad_overrides_exit_with_an_error_naming_the_key(tmp_path, override, message):
    result = run_program("experiments.train", "--config=configs/digits_mlp.py",
                         f"--workdir={tmp_path / 'run'}", override)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
