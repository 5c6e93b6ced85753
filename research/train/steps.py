"""The pure step functions. Each is jitted once by the loop, with the train state donated."""

from collections.abc import Callable

import flax.linen as nn
import jax
import optax

from research import metrics
from research.models import model_inputs
from research.train.state import TrainState


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, schedule: optax.Schedule,
                    seed: int, task) -> Callable:
    def train_step(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, dict]:
        # Randomness is a function of (seed, step): nothing random is carried between steps.
        dropout_key = jax.random.fold_in(jax.random.key(seed), state.step)
        x, inputs = model_inputs(batch)

        def loss_fn(params):
            logits, model_state = model.apply(
                {"params": params, **state.model_state}, x, **inputs, train=True,
                rngs={"dropout": dropout_key}, mutable=list(state.model_state))
            loss, task_metrics = task.loss_and_metrics(logits, batch)
            return loss, (task_metrics, model_state)

        (loss, (task_metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1, params=optax.apply_updates(state.params, updates),
            opt_state=opt_state, model_state=model_state)
        step_metrics = {"loss": loss, **task_metrics,
                        **metrics.optimizer_metrics(grads, schedule(state.step))}
        return new_state, step_metrics

    return train_step


def make_multi_step(train_step: Callable) -> Callable:
    """`multi_step(state, batches)`: `train_step` over the leading axis of `batches` in one call
    (a scan), each step's metrics stacked along that axis. A small model's step takes under a
    millisecond on CPU, about what a call costs on the host (dispatch, the batch's transfer):
    with n steps a call that cost is paid once for all n."""
    def multi_step(state: TrainState, batches: dict[str, jax.Array]) -> tuple[TrainState, dict]:
        return jax.lax.scan(train_step, state, batches)

    return multi_step


def make_eval_step(model: nn.Module, task) -> Callable:
    def eval_step(state: TrainState, batch: dict[str, jax.Array]) -> dict:
        """The task's sums over the batch's real rows."""
        x, inputs = model_inputs(batch)
        return task.eval_sums(model.apply(state.variables, x, **inputs, train=False), batch)

    return eval_step
