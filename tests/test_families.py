"""Every model family trains from a config through the standard loop and resumes exactly: a run
stopped by SIGTERM and rerun ends bitwise equal to one that never stopped."""

import signal

import jax
import ml_collections
import numpy as np
import pytest

from configs import bbc_news, digits_mlp, mnist1d
from research.sweeps.reproduce import final_params
from research.train import loop
from tests.conftest import StopAfterCalls
from tests.train.test_loop import read_json

TINY_TEXT = {"max_len": 64, "hidden": 16, "depth": 1, "heads": 2, "mlp_dim": 32, "dropout": 0.1}
FAMILIES = {
    "mlp": (digits_mlp, "", {"name": "mlp", "hidden_sizes": (16,)}),
    "cnn_bn": (digits_mlp, "model=cnn", {"name": "cnn", "conv_features": (4, 8), "dense_sizes": (16,),
                                         "batch_norm": True}),
    "resnet": (digits_mlp, "", {"name": "resnet", "stage_sizes": (1, 1), "widths": (4, 8)}),
    "vit": (digits_mlp, "", {"name": "vit", "patch_size": 4, "hidden": 16, "depth": 1, "heads": 2,
                             "mlp_dim": 32, "dropout": 0.1}),
    "cnn1d": (mnist1d, "model=cnn", None),
    "gru": (mnist1d, "model=gru", {"name": "gru", "hidden_size": 4, "bidirectional": True}),
    "transformer": (bbc_news, "model=transformer", {"name": "transformer", **TINY_TEXT, "causal": False,
                                                    "pool": "last"}),
    "lm": (bbc_news, "model=lm", {"name": "lm", **TINY_TEXT}),
}


def tiny_config(family: str, tfds_dir: str) -> ml_collections.ConfigDict:
    module, arg, model = FAMILIES[family]
    config = module.get_config(arg or None)
    if model is not None:
        config.model = ml_collections.ConfigDict(model)
    config.data.update(tfds_dir=tfds_dir, batch_size=16, vocab_size=400, max_len=64)
    config.train.update(steps=6, log_every=2, eval_every=6, checkpoint_every=3, epochs=0.0)
    config.eval.batch_size = 64
    config.mesh.num_devices = 1  # Sharding has its own tests; here compile time is what counts.
    return config


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_trains_and_resumes_bitwise(family, tfds_dir, tmp_path, monkeypatch):
    config = tiny_config(family, tfds_dir)
    whole = str(tmp_path / "whole")
    results = loop.train_and_evaluate(config, whole)
    assert results["status"] == "finished" and results["step"] == 6
    assert np.isfinite(results["eval/test/loss"])

    resumed = str(tmp_path / "resumed")
    with monkeypatch.context() as patch:
        patch.setattr(loop, "StopRequest", lambda **_: StopAfterCalls(4))
        stopped = loop.train_and_evaluate(config, resumed)
    assert stopped == {"status": "stopped", "signal": signal.SIGTERM, "step": 4}
    loop.train_and_evaluate(config, resumed)

    assert read_json(f"{whole}/results.json") == read_json(f"{resumed}/results.json")
    for a, b in zip(jax.tree.leaves(final_params(whole)), jax.tree.leaves(final_params(resumed)),
                    strict=True):
        np.testing.assert_array_equal(a, b)
