import jax
import numpy as np
import pytest

from research.data import pipeline
from research.errors import UserError
from research.parallel import sharding
from research.run import experiment
from research.train import state as state_lib
from research.train import steps as steps_lib


@pytest.fixture
def built(digits_config):
    digits_config.model.dropout = 0.3
    exp = experiment.build(digits_config)
    state = state_lib.initial_state(exp, digits_config.seed)
    steps = steps_lib.jit_steps(exp, digits_config.seed, state)
    train_step, eval_step = steps.train, steps.eval
    batch = next(pipeline.train_batches(exp.train_data.arrays, batch_size=32, seed=0))
    return exp, state, train_step, eval_step, sharding.put_batch(batch, exp.mesh)


def copy(tree):
    return jax.tree.map(lambda x: x.copy(), tree)


def test_train_step_lowers_the_loss_and_counts_steps(built):
    exp, state, train_step, _, batch = built
    losses = []
    for _ in range(40):
        state, step_metrics = train_step(state, batch)
        losses.append(float(step_metrics["loss"]))
    assert int(state.step) == 40
    assert losses[-1] < 0.7 * losses[0]
    assert set(step_metrics) == {"loss", "accuracy", "grad_norm", "lr"}


def test_train_step_is_a_pure_function_of_state_and_batch(built):
    """Same state and batch give bitwise the same result: the dropout key comes from the step."""
    _, state, train_step, _, batch = built
    a, metrics_a = train_step(copy(state), batch)
    b, metrics_b = train_step(copy(state), batch)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert float(metrics_a["loss"]) == float(metrics_b["loss"])
    later = state.replace(step=state.step + 1)
    _, metrics_c = train_step(copy(later), batch)
    assert float(metrics_c["loss"]) != float(metrics_a["loss"])  # Another step, another dropout mask.


def test_eval_step_ignores_padded_rows(built):
    exp, state, _, eval_step, _ = built
    n = 10
    real = {k: v[:n] for k, v in exp.eval_data.arrays.items()}
    padded = next(pipeline.eval_batches(real, batch_size=64))
    garbage = dict(padded, label=np.where(padded["mask"], padded["label"], 3),
                   image=np.where(padded["mask"][:, None, None, None], padded["image"], 255))
    clean = eval_step(state.variables, sharding.put_batch(padded, exp.mesh))
    dirty = eval_step(state.variables, sharding.put_batch(garbage, exp.mesh))
    assert int(clean["confusion"].sum()) == n
    np.testing.assert_array_equal(clean["confusion"], dirty["confusion"])
    np.testing.assert_allclose(clean["loss_sum"], dirty["loss_sum"], rtol=1e-6)


def one_update(config, grad_accum_steps: int, batch_rows: dict | None = None):
    """The params after one step from the initial state, with `grad_accum_steps` microbatches;
    and the batch it used."""
    config.train.grad_accum_steps = grad_accum_steps
    exp = experiment.build(config)
    state = state_lib.initial_state(exp, config.seed)
    steps = steps_lib.jit_steps(exp, config.seed, state)
    rows = batch_rows or next(pipeline.train_batches(exp.train_data.arrays, batch_size=32, seed=0))
    new_state, step_metrics = steps.train(state, sharding.put_batch(rows, exp.mesh))
    return jax.device_get(new_state.params), jax.device_get(step_metrics), rows


@pytest.mark.parametrize("family", ["mlp", "lm"])
def test_accumulating_four_microbatches_gives_the_batchs_update(family, tfds_dir):
    """Batch 32 in 4 microbatches of 8: the same update and metrics as batch 32 at once (the LM
    weights each microbatch by its tokens), within float32 rounding."""
    from tests.test_families import tiny_config

    config = tiny_config(family, tfds_dir)
    config.data.batch_size = 32
    config.model.dropout = 0.0  # Microbatches draw their own dropout masks.
    config.opt.update(name="sgd", lr=0.1)
    whole, whole_metrics, rows = one_update(config, 1)
    if family == "lm":  # Padding in one microbatch only, so that token weighting matters.
        rows = dict(rows)
        rows["token_mask"] = rows["token_mask"].copy()
        rows["token_mask"][::4, 20:] = False
        whole, whole_metrics, _ = one_update(config, 1, rows)
    accumulated, accumulated_metrics, _ = one_update(config, 4, rows)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(accumulated), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for name in ("loss", "accuracy", "grad_norm"):
        np.testing.assert_allclose(whole_metrics[name], accumulated_metrics[name], rtol=1e-5, err_msg=name)


def test_a_batch_that_does_not_split_into_microbatches_is_refused(digits_config):
    digits_config.train.grad_accum_steps = 3
    with pytest.raises(UserError, match="does not split into train.grad_accum_steps=3 microbatches"):
        experiment.build(digits_config)
