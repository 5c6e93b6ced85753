"""A new compression method, added by the route research/compress/ names (a `Method` and its
config fields, nothing else), trains through the unchanged step, state and loop: one that
freezes parameters (an optax transformation with a logged metric in its state) and wraps the
loss with a penalty on the logits."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import traverse_util

from research import compress, optim
from research.run import experiment
from research.sweeps.reproduce import final_params
from research.train import loop, state


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class FrozenCount(optim.ReportsMetrics):
    frozen: jax.Array

    def train_metrics(self) -> dict:
        return {"frozen_params": self.frozen}


@dataclasses.dataclass(frozen=True)
class PenalisedLoss:
    inner: object
    weight: float

    @property
    def frozen(self):
        return self.inner.frozen

    def targets(self, frozen, batch):
        return self.inner.targets(frozen, batch)

    def __call__(self, logits, batch, targets):
        loss, loss_metrics = self.inner(logits, batch, targets)
        penalty = jnp.mean(logits ** 2)
        return loss + self.weight * penalty, {**loss_metrics, "logit_penalty": penalty}


@dataclasses.dataclass(frozen=True)
class FreezeAndPenalise(compress.Method):
    name: str = "freeze"
    vectorizable: bool = True

    def selected(self, config) -> bool:
        return bool(config.freeze.params)

    def apply(self, config, parts, context):
        pattern = config.freeze.params

        def init(params):
            flat = traverse_util.flatten_dict(params, sep="/")
            return FrozenCount(jnp.asarray(sum(p.size for path, p in flat.items() if pattern in path)))

        def update(updates, state, params=None):
            flat = traverse_util.flatten_dict(updates, sep="/")
            flat = {path: jnp.zeros_like(u) if pattern in path else u for path, u in flat.items()}
            return traverse_util.unflatten_dict(flat, sep="/"), state

        freeze = optax.GradientTransformation(init, update)
        return dataclasses.replace(parts, tx=optax.chain(parts.tx, freeze),
                                   loss=PenalisedLoss(parts.loss, config.freeze.penalty))

    def report(self, params, opt_state) -> dict:
        return {"frozen": {"pattern": "Dense_0", "params": int(np.size(params["Dense_0"]["kernel"]))}}


def test_a_new_method_trains_through_the_unchanged_core(digits_config, tmp_path, monkeypatch):
    monkeypatch.setattr(compress, "METHODS", list(compress.METHODS))  # Undone after the test.
    compress.register(FreezeAndPenalise())
    digits_config.freeze = ml_collections.ConfigDict({"params": "Dense_0", "penalty": 0.01})
    digits_config.train.update(steps=20, log_every=10, eval_every=20, checkpoint_every=20)
    workdir = str(tmp_path / "run")
    results = loop.train_and_evaluate(digits_config, workdir)

    assert results["status"] == "finished" and results["frozen"]["pattern"] == "Dense_0"
    rows = [json.loads(line) for line in open(f"{workdir}/metrics.jsonl") if "train/logit_penalty" in line]
    assert len(rows) == 2 and rows[0]["train/logit_penalty"] > 0
    trained = final_params(workdir)
    assert rows[0]["train/frozen_params"] == results["frozen"]["params"] + np.size(trained["Dense_0"]["bias"])
    # The frozen layer kept its initial values; the next one trained.
    built = experiment.build(digits_config)
    initial = jax.device_get(state.init_state(built.model, built.tx, experiment.example_batch(built),
                                              digits_config.seed).params)
    np.testing.assert_array_equal(trained["Dense_0"]["kernel"], initial["Dense_0"]["kernel"])
    assert not np.array_equal(trained["Dense_1"]["kernel"], initial["Dense_1"]["kernel"])
