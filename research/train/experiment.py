"""What a config builds: data, model, optimizer, mesh, the initial state and the jitted steps.

Shared by training and by every program that restores a run (evaluate, export, ...).
"""

import dataclasses
import functools
import math
from collections.abc import Callable

import flax.linen as nn
import jax
import numpy as np
import optax

from research import models, optim, tasks, validation
from research.data import augment, sources, text, tokenizer
from research.errors import UserError
from research.models import model_inputs
from research.parallel import sharding
from research.train import distill, pruning, steps
from research.train.state import TrainState, init_state


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What a config builds: the pieces the step functions and the loop are made from."""

    model: object
    task: object  # tasks.Classification, BinaryClassification or LanguageModeling
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    train_data: sources.Split
    eval_data: sources.Split
    mesh: jax.sharding.Mesh
    augment: object  # (batch, rng) -> batch for the training stream, or None.
    tokenizer_file: str | None  # Text datasets: the tokenizer the run reads text with.
    steps_per_epoch: int
    total_steps: int
    grad_accum_steps: int = 1
    teacher: object = None  # distill.Teacher when config.distill.teacher names one.
    pruning: object = None  # pruning.Pruning when config.prune.target_sparsity is above 0.


def build(config, workdir: str | None = None) -> Experiment:
    """What `config` builds; `workdir`, when given, is the run's (its tokenizer is used)."""
    validation.validate(config)
    mesh = sharding.make_mesh(config.mesh)
    sharding.check_batch_size(config.data.batch_size, mesh, "data.batch_size",
                              microbatches=config.train.grad_accum_steps)
    sharding.check_batch_size(config.eval.batch_size, mesh, "eval.batch_size")
    train_data = sources.load_split(config.data, "train")
    eval_data = sources.load_split(config.data, config.eval.split)
    tokenizer_file, vocab_size = None, None
    if "text" in train_data.arrays:
        # A student reads text with its teacher's tokenizer, unless it starts from another run.
        tokenizer_file = text.tokenizer_path(config.data, text.texts(train_data), workdir=workdir,
                                             init_from=config.init_from or _teacher(config))
        tok = tokenizer.load(tokenizer_file)
        # Language models and masked language models read windows of the texts' token stream.
        language_model = config.model.name in tasks.LANGUAGE_MODELS or config.get("task") == "mlm"
        train_data = text.as_inputs(train_data, tok, config.data.max_len, language_model=language_model)
        eval_data = text.as_inputs(eval_data, tok, config.data.max_len, language_model=language_model)
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
    task = tasks.for_model(config.model.name, train_data.num_classes, config.get("task", "auto"),
                           vocab_size=vocab_size)
    if isinstance(task, tasks.MaskedLanguageModeling) and vocab_size is None:
        raise UserError(f"task=mlm needs a text dataset; {config.data.name!r} has no texts")
    if isinstance(task, tasks.BinaryClassification) and train_data.num_classes != 2:
        raise UserError(f"task=binary needs two classes; {config.data.name!r} has {train_data.num_classes}")
    num_outputs = getattr(task, "outputs", train_data.num_classes)
    teacher = None
    if _teacher(config):
        example = {name: np.zeros((1, *values.shape[1:]), values.dtype)
                   for name, values in train_data.arrays.items()}
        teacher = distill.load(config, mesh, example, num_outputs, vocab_size)
    model = models.build(config.model, num_outputs, vocab_size=vocab_size, task=config.get("task", "auto"))
    quant_mode = config.get("quant", {}).get("mode", "")
    if quant_mode not in ("", "qat"):
        raise UserError(f"quant.mode={quant_mode!r}; use qat, or '' (post-training quantization is "
                        "experiments.quantize)")
    if quant_mode == "qat":
        from research.train import quantize  # Qwix, only for runs that use it.

        model = quantize.qat_model(model, config.quant)
    return Experiment(
        model=model,
        task=task, tx=tx, schedule=schedule,
        train_data=train_data, eval_data=eval_data, mesh=mesh, augment=augment_batch,
        tokenizer_file=tokenizer_file, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
        grad_accum_steps=config.train.grad_accum_steps, teacher=teacher,
        pruning=pruning.Pruning.from_config(config.prune, total_steps) if "prune" in config else None)


def _teacher(config) -> str:
    return config.get("distill", {}).get("teacher", "")


def initial_state(experiment: Experiment, seed: int) -> TrainState:
    """The state at step 0, made on the devices directly in its layout (sharding.state_shardings):
    no device or host ever holds the whole model."""
    example = example_batch(experiment)

    def init():
        state = init_state(experiment.model, experiment.tx, example, seed)
        if experiment.pruning is None:
            return state
        return state.replace(masks=experiment.pruning.initial_masks(state.params))

    return jax.jit(init, out_shardings=state_shardings(experiment.model, experiment.mesh, example, init))()


def state_shardings(model, mesh: jax.sharding.Mesh, example: dict, init) -> TrainState:
    """Where each array of the state `init()` makes lies on `mesh`, from shapes alone: the model's
    logical axis names through the rule table (sharding.state_shardings)."""
    x, inputs = model_inputs(example)
    boxed = jax.eval_shape(lambda: model.init(jax.random.key(0), x, **inputs, train=False))
    logical = nn.get_partition_spec(boxed["params"])
    return sharding.state_shardings(jax.eval_shape(init), logical, mesh)


def example_batch(experiment: Experiment) -> dict[str, np.ndarray]:
    """A one-row batch of zeros shaped like the training data: what `init_state` needs."""
    return {name: np.zeros((1, *values.shape[1:]), values.dtype)
            for name, values in experiment.train_data.arrays.items()}


@dataclasses.dataclass(frozen=True)
class Steps:
    """The jitted steps a loop runs: `train` (state donated), `multi` (train over batches
    stacked on a leading axis, one step each, in one call; None when there is one step a
    call) and `eval`."""

    train: Callable
    multi: Callable | None
    eval: Callable


def jit_steps(experiment: Experiment, seed: int, state: TrainState, steps_per_call: int = 1) -> Steps:
    """The steps of one run, each compiled once for this mesh and the state's layout."""
    train_step = steps.make_train_step(
        experiment.model, experiment.tx, experiment.schedule, seed, experiment.task,
        experiment.grad_accum_steps, teacher=experiment.teacher, pruning=experiment.pruning)
    eval_step = steps.make_eval_step(experiment.model, experiment.task)
    jitted = jit_group_steps(experiment.mesh, state, train_step, eval_step, steps_per_call)
    if experiment.teacher is None:
        return jitted
    # The teacher's variables are the steps' last argument: an input, not a constant of the
    # compiled step, and not donated.
    with_teacher = lambda fn: fn and functools.partial(fn, teacher_variables=experiment.teacher.variables)  # noqa: E731
    return Steps(train=with_teacher(jitted.train), multi=with_teacher(jitted.multi), eval=jitted.eval)


def jit_group_steps(mesh, state, train_step: Callable, eval_step: Callable, steps_per_call: int) -> Steps:
    """`train_step` and `eval_step` jitted for `mesh`: the state donated and kept in its layout,
    metrics and sums replicated."""
    state_sharding = jax.tree.map(lambda x: x.sharding, state)
    out_shardings = (state_sharding, sharding.replicated(mesh))
    jit_train = lambda fn: jax.jit(fn, donate_argnums=0, out_shardings=out_shardings)  # noqa: E731
    return Steps(
        train=jit_train(train_step),
        multi=jit_train(steps.make_multi_step(train_step)) if steps_per_call > 1 else None,
        eval=jax.jit(eval_step, out_shardings=sharding.replicated(mesh)))
