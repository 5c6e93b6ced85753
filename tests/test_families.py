"""Every model family is one config argument away (`:model=NAME`) from every config whose data
it takes, trains from there through the standard loop and resumes exactly: a run stopped by
SIGTERM and rerun ends bitwise equal to one that never stopped."""

import os
import signal

import jax
import ml_collections
import numpy as np
import pytest

from configs import bbc_news, common, digits_mlp, fashion_mnist_cnn, lm, mnist1d
from research import config as config_lib
from research import export, models, validation
from research.errors import UserError
from research.serve import predict
from research.sweeps.reproduce import final_params
from research.train import loop
from tests.conftest import StopAfterCalls
from tests.train.test_loop import read_json

TINY_TEXT = {"max_len": 64, "hidden": 16, "depth": 1, "heads": 2, "mlp_dim": 32, "dropout": 0.1}
# Each family by the config argument `:model=NAME` of a config whose data it takes (the config's
# own variant of that name, or the family's defaults), then made tiny by model.* overrides.
FAMILIES = {
    "mlp": (digits_mlp, "mlp", {"hidden_sizes": (16,)}),
    "cnn_bn": (digits_mlp, "cnn", {"conv_features": (4, 8), "dense_sizes": (16,), "batch_norm": True}),
    "resnet": (digits_mlp, "resnet", {"stage_sizes": (1, 1), "widths": (4, 8)}),
    "vit": (digits_mlp, "vit", {"patch_size": 4, "hidden": 16, "depth": 1, "heads": 2, "mlp_dim": 32,
                                "dropout": 0.1}),
    "cnn1d": (mnist1d, "cnn1d", {}),
    "gru": (mnist1d, "gru", {"hidden_size": 4, "bidirectional": True}),
    "transformer": (bbc_news, "transformer", {**TINY_TEXT, "causal": False, "pool": "last"}),
    "lm": (bbc_news, "lm", TINY_TEXT),
}


def tiny_config(family: str, tfds_dir: str) -> ml_collections.ConfigDict:
    module, model, sizes = FAMILIES[family]
    config = module.get_config(f"model={model}")
    assert config.model.name == model
    # As --config.model.KEY=VALUE flags would: each key must be one the family has.
    config = config_lib.apply_overrides(config, {f"model.{key}": value for key, value in sizes.items()})
    config.data.update(tfds_dir=tfds_dir, batch_size=16, vocab_size=400, max_len=64)
    config.train.update(steps=6, log_every=2, eval_every=6, checkpoint_every=3, epochs=0.0)
    config.eval.batch_size = 64
    config.mesh.num_devices = 1  # Sharding has its own tests; here compile time is what counts.
    return config


@pytest.mark.parametrize("module,inputs", [(digits_mlp, "image"), (fashion_mnist_cnn, "image"),
                                           (mnist1d, "signal"), (bbc_news, "text")])
def test_every_family_that_takes_a_configs_data_is_one_argument_away(module, inputs):
    for family in common.FAMILIES[inputs]:
        config = module.get_config(f"model={family}")
        assert config.model.name == family
        validation.validate(config)
        models.build(config.model, num_classes=3, vocab_size=400)
    with pytest.raises(ValueError, match="unknown model 'gru'") if inputs == "image" else \
            pytest.raises(ValueError, match="unknown model 'vit'"):
        module.get_config("model=gru" if inputs == "image" else "model=vit")


@pytest.mark.parametrize("size", list(lm.SIZES))
def test_every_language_model_size_sets_the_lm_familys_fields(size):
    config = lm.get_config(f"size={size}")
    assert set(config.model) == {"name", *models.defaults("lm")}
    assert config.model.mlp_dim == 4 * config.model.hidden and config.data.max_len == config.model.max_len
    models.build(config.model, num_classes=0, vocab_size=config.data.vocab_size)


def test_renaming_the_family_by_flag_says_how_to_switch():
    config = fashion_mnist_cnn.get_config()
    config.model.name = "vit"
    with pytest.raises(UserError, match=r"has no field\(s\) .*--config=FILE.py:model=vit"):
        models.build(config.model, num_classes=10)


# Stopped and resumed here: one family of each kind of state a resume must restore (batch
# statistics, dropout's key, a recurrence's scan, a padding mask). The MLP's and the language
# model's resumes are tested elsewhere (tests/train/test_loop.py, tests/data/test_text_folder.py).
RESUMED = ("cnn_bn", "vit", "gru", "transformer")


# Exported to StableHLO and ONNX and checked here: a plain MLP, a CNN with BatchNorm, a ResNet
# and a Transformer classifier over padded tokens.
EXPORTED = ("mlp", "cnn_bn", "resnet", "transformer")


def check_export(family: str, workdir: str) -> None:
    """A classifier exports (a language model is refused with a pointer to generate): the
    exported files give the JAX model's probabilities within 1e-5 at any batch size."""
    if family == "gru":  # Flax's RNN makes its carry from the batch size, which ONNX export cannot.
        with pytest.raises(UserError, match="jax2onnx cannot convert the 'gru' model"):
            export.export_workdir(workdir, formats=("onnx",))
        assert not os.path.exists(os.path.join(workdir, "export.tmp"))  # Nothing left behind.
        written = export.export_workdir(workdir, formats=("stablehlo",))["formats"]["stablehlo"]
        assert written["max_abs_diff"] <= 1e-5
        return
    if family not in (*EXPORTED, "lm"):
        return
    if family == "lm":
        with pytest.raises(UserError, match="experiments.generate"):
            export.export_workdir(workdir)
        return
    signature = export.export_workdir(workdir, formats=("stablehlo", "onnx"))
    assert max(f["max_abs_diff"] for f in signature["formats"].values()) <= 1e-5
    predictor = export.load(workdir)
    batch = export.test_batch(predictor, rows=7)
    for load_format in (export.load_stablehlo, export.load_onnx):
        _, exported = load_format(f"{workdir}/export")
        for rows in (1, 7):  # One file, any batch size.
            part = {name: array[:rows] for name, array in batch.items()}
            expected = predictor.probabilities(part)
            assert expected.shape == (rows, len(signature["class_names"]))
            np.testing.assert_allclose(exported(part), expected, rtol=0, atol=1e-5)
            np.testing.assert_allclose(expected.sum(-1), 1.0, rtol=1e-5)
    if signature["kind"] == "tokens":  # A text file, tokenized by the run's (and the export's) tokenizer.
        article = os.path.join(workdir, "article.txt")
        with open(article, "w") as f:
            f.write("The chancellor said the economy grew faster than expected this quarter.")
        by_backend = {b: predict.predict(workdir, [article], backend=b) for b in ("jax", "onnx")}
        np.testing.assert_allclose(by_backend["onnx"][0]["probabilities"],
                                   by_backend["jax"][0]["probabilities"], atol=2e-6)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_trains_and_resumes_bitwise(family, tfds_dir, tmp_path, monkeypatch):
    config = tiny_config(family, tfds_dir)
    whole = str(tmp_path / "whole")
    results = loop.train_and_evaluate(config, whole)
    assert results["status"] == "finished" and results["step"] == 6
    assert np.isfinite(results["eval/test/loss"])
    check_export(family, whole)
    if family not in RESUMED:
        return

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
