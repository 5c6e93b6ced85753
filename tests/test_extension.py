"""A new model and a new dataset, added by the route the README's "Where to add" names, train."""

import flax.linen as nn
import ml_collections

from research import models
from research.data import registry
from research.train import loop


class Linear(nn.Module):
    """A toy family: one dense layer over the flattened input."""

    num_classes: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dense(self.num_classes, use_bias=self.use_bias)(x.reshape(x.shape[0], -1))


def test_a_toy_model_and_dataset_train_through_the_registries(digits_config, tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "DATASETS", dict(registry.DATASETS))  # Undone after the test.
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    registry.register("toy_points", registry.local("tests.toy_points.builder:ToyPoints"))
    models.register("toy_linear", Linear)

    digits_config.data.name = "toy_points"
    digits_config.model = ml_collections.ConfigDict({"name": "toy_linear", "use_bias": True})
    digits_config.opt.lr = 0.05
    digits_config.train.update(steps=100, eval_every=100, checkpoint_every=100)
    results = loop.train_and_evaluate(digits_config, str(tmp_path / "run"))
    assert results["status"] == "finished"
    assert results["eval/test/accuracy"] > 0.9  # A linear boundary: a linear model learns it.
