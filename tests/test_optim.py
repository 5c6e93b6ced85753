import jax
import jax.numpy as jnp
import ml_collections
import optax
import pytest

from configs import common
from research import optim
from research.errors import UserError


def opt_config(**overrides) -> ml_collections.ConfigDict:
    config = common.base_config().opt
    config.update(overrides)
    return config


def test_warmup_then_cosine_reaches_end_value():
    schedule = optim.make_schedule(opt_config(lr=0.1, schedule="cosine", warmup_steps=10,
                                              end_lr_factor=0.01), total_steps=110)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(0.05)
    assert float(schedule(10)) == pytest.approx(0.1)
    assert float(schedule(110)) == pytest.approx(0.001)


def test_linear_and_constant_schedules():
    linear = optim.make_schedule(opt_config(lr=1.0, schedule="linear"), total_steps=100)
    constant = optim.make_schedule(opt_config(lr=1.0, schedule="constant"), total_steps=100)
    assert float(linear(50)) == pytest.approx(0.5)
    assert float(constant(99)) == 1.0


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_each_optimizer_minimises_a_quadratic(name):
    tx, _ = optim.make_optimizer(opt_config(name=name, lr=0.1, weight_decay=1e-4), total_steps=200)
    params = {"w": jnp.full((3, 3), 2.0), "b": jnp.full((3,), -2.0)}
    state = tx.init(params)
    loss = lambda p: sum(jnp.sum(x**2) for x in jax.tree.leaves(p))
    start = loss(params)
    for _ in range(100):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    assert loss(params) < 0.05 * start


def test_clipping_bounds_the_update():
    tx, _ = optim.make_optimizer(opt_config(name="sgd", lr=1.0, clip_norm=0.5), total_steps=10)
    params = {"w": jnp.zeros(4)}
    updates, _ = tx.update({"w": jnp.full(4, 100.0)}, tx.init(params), params)
    assert float(optax.global_norm(updates)) == pytest.approx(0.5)


def test_weight_decay_skips_biases():
    tx, _ = optim.make_optimizer(opt_config(name="sgd", lr=1.0, weight_decay=0.1), total_steps=10)
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero_grads, tx.init(params), params)
    assert float(updates["kernel"][0, 0]) == pytest.approx(-0.1)
    assert float(updates["bias"][0]) == 0.0


@pytest.mark.parametrize("field,value", [("name", "adagrad"), ("schedule", "step")])
def test_unknown_names_are_user_errors(field, value):
    with pytest.raises(UserError, match=value):
        optim.make_optimizer(opt_config(**{field: value}), total_steps=10)
