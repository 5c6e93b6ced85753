"""The pure step functions. Each is jitted once by the loop, with the train state donated."""

import dataclasses
import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from research import metrics, optim, tasks
from research.models import model_inputs
from research.parallel import sharding
from research.run.experiment import Experiment
from research.train.state import TrainState

# Folded into a step's key for the task's input corruption, apart from dropout's.
CORRUPT_STREAM = 1


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, schedule: optax.Schedule,
                    seed: int, task: tasks.Task, loss: tasks.Loss, grad_accum_steps: int = 1) -> Callable:
    """`train_step(state, batch[, frozen]) -> (state, metrics)`, minimising `loss`; `frozen` is
    `loss.frozen`, the arrays it reads but does not train. With `grad_accum_steps` k, the batch
    is k microbatches (rows k apart, so each device keeps its own rows), their gradients summed
    in a scan weighted by each one's share of the batch's examples or tokens (`task.weight`),
    then one update: the update of the whole batch, in a k-th of the activation memory."""

    def gradients(params, model_state, batch, dropout_key, frozen=None):
        x, inputs = model_inputs(batch)
        targets = loss.targets(frozen, batch)  # Outside the differentiated function.

        def loss_fn(params):
            logits, new_model_state = model.apply(
                {"params": params, **model_state}, x, **inputs, train=True,
                rngs={"dropout": dropout_key}, mutable=list(model_state))
            value, loss_metrics = loss(logits, batch, targets)
            return value, (loss_metrics, new_model_state)

        (value, (loss_metrics, new_model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        return grads, {"loss": value, **loss_metrics}, new_model_state

    def accumulated(params, model_state, batch, dropout_key, frozen=None):
        k = grad_accum_steps  # [B, ...] -> [k, B / k, ...]; microbatch i holds rows i, i + k, ...
        micro = jax.tree.map(lambda x: x.reshape(x.shape[0] // k, k, *x.shape[1:]).swapaxes(0, 1), batch)
        weights_K = jax.vmap(task.weight)(micro)
        weights_K = weights_K / weights_K.sum()

        def add(carry, inputs):
            grad_sum, model_state = carry
            index, weight, microbatch = inputs
            grads, micro_metrics, model_state = gradients(
                params, model_state, microbatch, jax.random.fold_in(dropout_key, index), frozen)
            grad_sum = jax.tree.map(lambda total, g: total + weight * g, grad_sum, grads)
            return (grad_sum, model_state), jax.tree.map(lambda m: weight * m, micro_metrics)

        zeros = jax.tree.map(jnp.zeros_like, params)
        (grads, model_state), weighted_K = jax.lax.scan(
            add, (zeros, model_state), (jnp.arange(grad_accum_steps), weights_K, micro))
        return grads, jax.tree.map(lambda m: m.sum(0), weighted_K), model_state

    def train_step(state: TrainState, batch: dict[str, jax.Array], frozen=None) -> tuple[TrainState, dict]:
        # Randomness is a function of (seed, step): nothing random is carried between steps.
        dropout_key = jax.random.fold_in(jax.random.key(seed), state.step)
        batch = task.corrupt(batch, jax.random.fold_in(dropout_key, CORRUPT_STREAM))
        grads_of = gradients if grad_accum_steps == 1 else accumulated
        grads, loss_metrics, model_state = grads_of(state.params, state.model_state, batch, dropout_key,
                                                    frozen)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                                  opt_state=opt_state, model_state=model_state)
        step_metrics = {**loss_metrics, **optim.state_metrics(opt_state),
                        **metrics.optimizer_metrics(grads, schedule(state.step))}
        return new_state, step_metrics

    return train_step


def make_multi_step(train_step: Callable) -> Callable:
    """`multi_step(state, batches)`: `train_step` over the leading axis of `batches` in one call
    (a scan), each step's metrics stacked along that axis. A small model's step takes under a
    millisecond on CPU, about what a call costs on the host (dispatch, the batch's transfer):
    with n steps a call that cost is paid once for all n."""
    def multi_step(state: TrainState, batches: dict[str, jax.Array], frozen=None) -> tuple[TrainState, dict]:
        if frozen is None:
            return jax.lax.scan(train_step, state, batches)
        return jax.lax.scan(lambda s, batch: train_step(s, batch, frozen), state, batches)

    return multi_step


def make_eval_step(model: nn.Module, task: tasks.Task) -> Callable:
    def eval_step(variables: dict, batch: dict[str, jax.Array]) -> dict:
        """The task's sums over the batch's real rows."""
        batch = task.corrupt(batch)
        x, inputs = model_inputs(batch)
        return task.eval_sums(model.apply(variables, x, **inputs, train=False), batch)

    return eval_step


@dataclasses.dataclass(frozen=True)
class Steps:
    """The jitted steps a loop runs: `train` (state donated), `multi` (train over batches
    stacked on a leading axis, one step each, in one call; None when there is one step a
    call) and `eval` (of the state's variables)."""

    train: Callable
    multi: Callable | None
    eval: Callable


def jit_steps(exp: Experiment, seed: int, state: TrainState, steps_per_call: int = 1) -> Steps:
    """The steps of one run, each compiled once for this mesh and the state's layout."""
    train_step = make_train_step(exp.model, exp.tx, exp.schedule, seed, exp.task, exp.loss,
                                 exp.grad_accum_steps)
    eval_step = make_eval_step(exp.model, exp.task)
    jitted = jit_group_steps(exp.mesh, state, train_step, eval_step, steps_per_call)
    if exp.loss.frozen is None:
        return jitted
    # What the loss reads but does not train is the steps' last argument: an input, not a
    # constant of the compiled step, and not donated.
    with_frozen = lambda fn: fn and functools.partial(fn, frozen=exp.loss.frozen)  # noqa: E731
    return Steps(train=with_frozen(jitted.train), multi=with_frozen(jitted.multi), eval=jitted.eval)


def jit_group_steps(mesh, state, train_step: Callable, eval_step: Callable, steps_per_call: int) -> Steps:
    """`train_step` and `eval_step` jitted for `mesh`: the state donated and kept in its layout,
    the models' activations in theirs (`sharding.on_mesh`), metrics and sums replicated."""
    state_sharding = jax.tree.map(lambda x: x.sharding, state)
    out_shardings = (state_sharding, sharding.replicated(mesh))
    jit_train = lambda fn: jax.jit(sharding.on_mesh(fn, mesh), donate_argnums=0,  # noqa: E731
                                   out_shardings=out_shardings)
    return Steps(
        train=jit_train(train_step),
        multi=jit_train(make_multi_step(train_step)) if steps_per_call > 1 else None,
        eval=jax.jit(sharding.on_mesh(eval_step, mesh), out_shardings=sharding.replicated(mesh)))
