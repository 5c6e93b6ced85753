import os
import subprocess
import sys

import jax.numpy as jnp
import pytest

from research.parallel.inflight import MAX_IN_FLIGHT, InFlight
from research.train import evaluation, loop
from tests.conftest import ROOT, suite_xla_flags

# XLA:CPU deadlocks in an all-reduce once a loop runs about 33 or more collective calls ahead
# of two devices (docs/upstream/xla_cpu_inflight_deadlock.md); without a bound these loops
# abort with a rendezvous timeout in every run tried.
FAR_AHEAD = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from research.parallel.inflight import InFlight
mesh = Mesh(np.array(jax.devices()), ("data",))
replicated, split = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data"))
w = jax.device_put(jnp.ones((64, 32)), replicated)
x = jax.device_put(jnp.ones((32, 64)), split)
def step(w, x):
    g = jax.grad(lambda w: jnp.mean(jnp.tanh(x @ w) ** 2))(w)
    return w - 0.1 * g, jnp.sum(g)
step = jax.jit(step, donate_argnums=0, out_shardings=(replicated, replicated))
in_flight = InFlight()
for _ in range(400):
    w, total = step(w, x)
    in_flight.add(total)
print("finished", float(jax.block_until_ready(total)))
"""


def two_cpu_devices() -> dict:
    return {**os.environ, "XLA_FLAGS": suite_xla_flags(2), "JAX_PLATFORMS": "cpu"}


def test_a_collective_step_dispatched_in_a_loop_never_deadlocks():
    done = subprocess.run([sys.executable, "-c", FAR_AHEAD], cwd=ROOT, env=two_cpu_devices(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "finished" in done.stdout


def test_training_and_evaluation_put_every_call_under_the_bound(digits_config, tmp_path, monkeypatch):
    """On four devices: every train call and every evaluation batch goes through the bound
    (the loop's per-step transfer has kept it from running far ahead so far; nothing promises
    that it will)."""
    recorded = []

    class Recording(InFlight):
        def add(self, outputs):
            recorded.append(self.limit)
            super().add(outputs)

    monkeypatch.setattr(loop, "InFlight", Recording)
    monkeypatch.setattr(evaluation, "InFlight", Recording)
    digits_config.train.steps, digits_config.train.log_every = 20, 20
    digits_config.eval.batch_size = 40  # 360 test examples: 9 batches.
    loop.train_and_evaluate(digits_config, str(tmp_path / "run"))
    assert recorded == [MAX_IN_FLIGHT] * (20 + 9)


def test_only_the_oldest_calls_are_waited_for(monkeypatch):
    waited = []
    monkeypatch.setattr("jax.block_until_ready", waited.append)
    in_flight = InFlight(limit=3)
    outputs = [jnp.full((), i) for i in range(5)]
    for output in outputs:
        in_flight.add(output)
    assert [int(w) for w in waited] == [0, 1] and len(in_flight) == 3
    with pytest.raises(ValueError, match="at least one call"):
        InFlight(limit=0)
