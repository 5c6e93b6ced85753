"""The pure step functions. Each is jitted once by the loop, with the train state donated."""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from research import metrics
from research.models import model_inputs
from research.train import distill
from research.train.state import TrainState

# Folded into a step's key for the task's input corruption, apart from dropout's.
CORRUPT_STREAM = 1


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, schedule: optax.Schedule,
                    seed: int, task, grad_accum_steps: int = 1, teacher=None, pruning=None) -> Callable:
    """`train_step(state, batch[, teacher_variables]) -> (state, metrics)`. With
    `grad_accum_steps` k, the batch is k microbatches (rows k apart, so each device keeps its
    own rows), their gradients summed in a scan weighted by each one's share of the batch's
    examples or tokens, then one update: the update of the whole batch, in a k-th of the
    activation memory. With a `teacher` (distill.Teacher), the loss is the distillation loss
    and the teacher's variables are the step's third argument. With `pruning`
    (pruning.Pruning), the state's masks are updated on schedule and applied after the update."""

    def gradients(params, model_state, batch, dropout_key, teacher_variables=None):
        x, inputs = model_inputs(batch)
        teacher_logits = None
        if teacher is not None:  # In eval mode, outside the differentiated function.
            teacher_logits = teacher.model.apply(teacher_variables, x, **inputs, train=False)

        def loss_fn(params):
            logits, new_model_state = model.apply(
                {"params": params, **model_state}, x, **inputs, train=True,
                rngs={"dropout": dropout_key}, mutable=list(model_state))
            loss, task_metrics = task.loss_and_metrics(logits, batch)
            if teacher is not None:
                kl = distill.kl_divergence(logits, teacher_logits, batch, task, teacher.temperature)
                task_metrics = {**task_metrics, "task_loss": loss, "distill_kl": kl}
                loss = teacher.alpha * teacher.temperature ** 2 * kl + (1 - teacher.alpha) * loss
            return loss, (task_metrics, new_model_state)

        (loss, (task_metrics, new_model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        return grads, {"loss": loss, **task_metrics}, new_model_state

    def accumulated(params, model_state, batch, dropout_key, teacher_variables=None):
        k = grad_accum_steps  # [B, ...] -> [k, B / k, ...]; microbatch i holds rows i, i + k, ...
        micro = jax.tree.map(lambda x: x.reshape(x.shape[0] // k, k, *x.shape[1:]).swapaxes(0, 1), batch)
        weights_K = jax.vmap(task.weight)(micro)
        weights_K = weights_K / weights_K.sum()

        def add(carry, inputs):
            grad_sum, model_state = carry
            index, weight, microbatch = inputs
            grads, micro_metrics, model_state = gradients(
                params, model_state, microbatch, jax.random.fold_in(dropout_key, index), teacher_variables)
            grad_sum = jax.tree.map(lambda total, g: total + weight * g, grad_sum, grads)
            return (grad_sum, model_state), jax.tree.map(lambda m: weight * m, micro_metrics)

        zeros = jax.tree.map(jnp.zeros_like, params)
        (grads, model_state), weighted_K = jax.lax.scan(
            add, (zeros, model_state), (jnp.arange(grad_accum_steps), weights_K, micro))
        return grads, jax.tree.map(lambda m: m.sum(0), weighted_K), model_state

    def train_step(state: TrainState, batch: dict[str, jax.Array],
                   teacher_variables=None) -> tuple[TrainState, dict]:
        # Randomness is a function of (seed, step): nothing random is carried between steps.
        dropout_key = jax.random.fold_in(jax.random.key(seed), state.step)
        if hasattr(task, "corrupt"):  # The input the model sees (masked language modelling).
            batch = task.corrupt(batch, jax.random.fold_in(dropout_key, CORRUPT_STREAM))
        grads_of = gradients if grad_accum_steps == 1 else accumulated
        grads, task_metrics, model_state = grads_of(state.params, state.model_state, batch, dropout_key,
                                                    teacher_variables)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params, masks = optax.apply_updates(state.params, updates), state.masks
        if pruning is not None:
            masks, params, sparsity = pruning.step(params, masks, state.step + 1)
            task_metrics = {**task_metrics, "sparsity": sparsity}
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                                  model_state=model_state, masks=masks)
        step_metrics = {**task_metrics, **metrics.optimizer_metrics(grads, schedule(state.step))}
        return new_state, step_metrics

    return train_step


def make_multi_step(train_step: Callable) -> Callable:
    """`multi_step(state, batches)`: `train_step` over the leading axis of `batches` in one call
    (a scan), each step's metrics stacked along that axis. A small model's step takes under a
    millisecond on CPU, about what a call costs on the host (dispatch, the batch's transfer):
    with n steps a call that cost is paid once for all n."""
    def multi_step(state: TrainState, batches: dict[str, jax.Array],
                   teacher_variables=None) -> tuple[TrainState, dict]:
        if teacher_variables is None:
            return jax.lax.scan(train_step, state, batches)
        return jax.lax.scan(lambda s, batch: train_step(s, batch, teacher_variables), state, batches)

    return multi_step


def make_eval_step(model: nn.Module, task) -> Callable:
    def eval_step(state: TrainState, batch: dict[str, jax.Array]) -> dict:
        """The task's sums over the batch's real rows."""
        if hasattr(task, "corrupt"):
            batch = task.corrupt(batch)
        x, inputs = model_inputs(batch)
        return task.eval_sums(model.apply(state.variables, x, **inputs, train=False), batch)

    return eval_step
