"""What a config builds: data, model, optimizer, mesh, the initial state and the jitted steps.

Shared by training and by every program that restores a run (evaluate, export, ...).
"""

import dataclasses
import math

import jax
import numpy as np
import optax

from research import models, optim, sharding, steps, tasks
from research.data import augment, sources, text, tokenizer
from research.errors import UserError
from research.state import TrainState, init_state


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What a config builds: the pieces the step functions and the loop are made from."""

    model: object
    task: object  # tasks.Classification or tasks.LanguageModeling
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    train_data: sources.Split
    eval_data: sources.Split
    mesh: jax.sharding.Mesh
    augment: object  # (batch, rng) -> batch for the training stream, or None.
    tokenizer_file: str | None  # Text datasets: the tokenizer the run reads text with.
    steps_per_epoch: int
    total_steps: int


def build(config, workdir: str | None = None) -> Experiment:
    """What `config` builds; `workdir`, when given, is the run's (its tokenizer is used)."""
    mesh = sharding.make_mesh(config.mesh.num_devices)
    sharding.check_batch_size(config.data.batch_size, mesh, "data.batch_size")
    sharding.check_batch_size(config.eval.batch_size, mesh, "eval.batch_size")
    train_data = sources.load_split(config.data, "train")
    eval_data = sources.load_split(config.data, config.eval.split)
    tokenizer_file, vocab_size = None, None
    if "text" in train_data.arrays:
        tokenizer_file = text.tokenizer_path(config.data, train_data.arrays["text"], workdir=workdir,
                                             init_from=config.init_from)
        tok = tokenizer.load(tokenizer_file)
        as_inputs = text.windows if config.model.name in tasks.LANGUAGE_MODELS else text.examples
        train_data = as_inputs(train_data, tok, config.data.max_len)
        eval_data = as_inputs(eval_data, tok, config.data.max_len)
        vocab_size = tok.vocab_size
    steps_per_epoch = math.ceil(len(train_data) / config.data.batch_size)
    total_steps = config.train.steps or round(config.train.epochs * steps_per_epoch)
    if total_steps <= 0:
        raise UserError("nothing to train: set --config.train.steps or --config.train.epochs above 0")
    if config.train.steps_per_call < 1:
        raise UserError(f"train.steps_per_call={config.train.steps_per_call}; it must be 1 or more")
    tx, schedule = optim.make_optimizer(config.opt, total_steps)
    augment_batch = augment.parse(config.data.augment)
    if augment_batch is not None and "image" not in train_data.arrays:
        raise UserError(f"data.augment has image ops but {config.data.name!r} has no images")
    return Experiment(
        model=models.build(config.model, train_data.num_classes, vocab_size=vocab_size),
        task=tasks.for_model(config.model.name, train_data.num_classes), tx=tx, schedule=schedule,
        train_data=train_data, eval_data=eval_data, mesh=mesh, augment=augment_batch,
        tokenizer_file=tokenizer_file,
        steps_per_epoch=steps_per_epoch, total_steps=total_steps)


def initial_state(experiment: Experiment, seed: int) -> TrainState:
    """The state at step 0, made on device and replicated over the mesh."""
    init = lambda: init_state(experiment.model, experiment.tx, example_batch(experiment), seed)  # noqa: E731
    return jax.jit(init, out_shardings=sharding.replicated(experiment.mesh))()


def example_batch(experiment: Experiment) -> dict[str, np.ndarray]:
    """A one-row batch of zeros shaped like the training data: what `init_state` needs."""
    return {name: np.zeros((1, *values.shape[1:]), values.dtype)
            for name, values in experiment.train_data.arrays.items()}


def jit_steps(experiment: Experiment, seed: int, state: TrainState):
    """train_step (state donated) and eval_step, each compiled once for this mesh."""
    train_step = steps.make_train_step(
        experiment.model, experiment.tx, experiment.schedule, seed, experiment.task)
    eval_step = jax.jit(
        steps.make_eval_step(experiment.model, experiment.task),
        out_shardings=sharding.replicated(experiment.mesh))
    return _jit_train(train_step, experiment, state), eval_step


def jit_multi_step(experiment: Experiment, seed: int, state: TrainState):
    """The train step as steps.make_multi_step's (state donated): batches stacked along a
    leading axis (sharding.put_batch(..., leading_axes=1)), one step each, in one call."""
    train_step = steps.make_train_step(
        experiment.model, experiment.tx, experiment.schedule, seed, experiment.task)
    return _jit_train(steps.make_multi_step(train_step), experiment, state)


def _jit_train(train_step, experiment: Experiment, state: TrainState):
    state_sharding = jax.tree.map(lambda x: x.sharding, state)
    return jax.jit(train_step, donate_argnums=0,
                   out_shardings=(state_sharding, sharding.replicated(experiment.mesh)))


def intervals(train_config, steps_per_epoch: int) -> tuple[int, int, int]:
    """Steps between logs, evaluations and checkpoints (0 in config: once an epoch, and
    checkpoints at every evaluation)."""
    eval_every = train_config.eval_every or steps_per_epoch
    return train_config.log_every, eval_every, train_config.checkpoint_every or eval_every


def steps_this_call(step: int, train_config, steps_per_epoch: int, total_steps: int) -> int:
    """Steps the loop's next call runs from `step`: train.steps_per_call when the call starts on
    a multiple of it and ends by the next log, evaluation, checkpoint or the last step, else 1.
    Only two call lengths, so only two compilations; and a function of `step` alone, so a
    resumed run makes the same calls as an uninterrupted one."""
    per_call = train_config.steps_per_call
    cadences = intervals(train_config, steps_per_epoch)
    next_event = min(total_steps, *(step - step % every + every for every in cadences))
    return per_call if step % per_call == 0 and step + per_call <= next_event else 1
