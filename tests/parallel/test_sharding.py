import jax
import numpy as np

from research.sweeps.reproduce import final_params
from research.train import loop


def test_one_and_four_devices_train_the_same(digits_config, tmp_path):
    assert jax.device_count() >= 4
    digits_config.train.steps = 30
    results, params = {}, {}
    for devices in (1, 4):
        digits_config.mesh.num_devices = devices
        workdir = str(tmp_path / f"devices{devices}")
        results[devices] = loop.train_and_evaluate(digits_config, workdir)
        params[devices] = final_params(workdir)
    for name in ("eval/test/loss", "eval/test/accuracy", "eval/test/f1"):
        np.testing.assert_allclose(results[1][name], results[4][name], rtol=1e-4, err_msg=name)
    for a, b in zip(jax.tree.leaves(params[1]), jax.tree.leaves(params[4]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)

