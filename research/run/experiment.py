"""What a config builds: data, task, model, loss, optimizer and mesh, with the compression
methods the config selects applied to them (research/compress/), and the train state's
initial fields and layout.

Shared by training and by every program that restores a run (evaluate, export, serve, ...).
"""

import dataclasses
import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from research import compress, models, optim, tasks, validation
from research.data import augment, sources, text, tokenizer
from research.errors import UserError
from research.models import model_inputs
from research.parallel import sharding
from research.run import checkpoint


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What a config builds: the pieces the step functions and the loop are made from."""

    model: nn.Module
    task: tasks.Task
    loss: tasks.Loss  # The task's loss, or a compression method's wrapper of it.
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
    # (params, opt_state) -> what the selected compression methods add to results.json; None
    # when no method is selected.
    report: Callable[[object, object], dict] | None = None
    # ({"params", "model_state"} on devices, leading axes of stacked runs) -> the same with
    # another run's weights in them (`init_from`, or a method's source run); None: the random
    # init stands.
    warm_start: Callable[[dict, int], dict] | None = None


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
        # A run reads text with the tokenizer of the run it starts from, or of the one a
        # compression method learns from (a student's teacher).
        tokenizer_file = text.tokenizer_path(config.data, text.texts(train_data), workdir=workdir,
                                             init_from=config.init_from or compress.tokenizer_source(config))
        tok = tokenizer.load(tokenizer_file)
        # Tasks over tokens read windows of the texts' token stream.
        language_model = tasks.for_model(config.model.name, 0, config.task).predicts_tokens
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
    task = tasks.for_model(config.model.name, train_data.num_classes, config.task, vocab_size=vocab_size)
    if isinstance(task, tasks.MaskedLanguageModeling) and vocab_size is None:
        raise UserError(f"task=mlm needs a text dataset; {config.data.name!r} has no texts")
    if isinstance(task, tasks.BinaryClassification) and train_data.num_classes != 2:
        raise UserError(f"task=binary needs two classes; {config.data.name!r} has {train_data.num_classes}")
    num_outputs = task.outputs(train_data.num_classes)
    model = models.build(config.model, num_outputs, vocab_size=vocab_size, task=config.task)
    example = one_row(train_data.arrays)
    parts = compress.Parts(model=model, loss=tasks.TaskLoss(task), tx=tx)
    context = compress.Context(
        task=task, example_batch=example, num_outputs=num_outputs, vocab_size=vocab_size, mesh=mesh,
        total_steps=total_steps, load_variables=checkpoint.latest_variables)
    parts = compress.apply(config, parts, context)
    return Experiment(
        model=parts.model, task=task, loss=parts.loss, tx=parts.tx, schedule=schedule,
        train_data=train_data, eval_data=eval_data, mesh=mesh, augment=augment_batch,
        tokenizer_file=tokenizer_file, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
        grad_accum_steps=config.train.grad_accum_steps,
        report=(lambda params, opt_state: compress.reports(config, params, opt_state))
        if compress.selected(config) else None,
        warm_start=warm_start(config, context))


def warm_start(config, context: compress.Context) -> Callable[[dict, int], dict] | None:
    """What fills a fresh run's variables: `init_from`'s matching leaves, or the weights of the
    run a selected compression method starts from; None when neither is set."""
    method = compress.start_method(config)
    if method is not None and config.init_from:
        raise UserError(f"init_from and {method.name} each name a run to start from; choose one")
    if config.init_from:
        return lambda target, leading_axes: checkpoint.load_matching(config.init_from, target, leading_axes)
    if method is None:
        return None

    def start(target: dict, leading_axes: int) -> dict:
        one_run = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape[leading_axes:], leaf.dtype),
                               target)
        return checkpoint.place(method.initial_variables(config, context, one_run), target, leading_axes)

    return start


def initial_fields(model: nn.Module, tx: optax.GradientTransformation, example_batch: dict,
                   seed: int) -> dict:
    """The train state's fields at step 0 from `key(seed)`: step, params, opt_state and
    model_state; pure, so it can be jitted or shape-evaluated. `example_batch` gives the
    inputs' shapes and dtypes (one row is enough)."""
    x, inputs = model_inputs(example_batch)
    # Unboxed: the logical axis names some modules give their parameters only place them
    # (research/parallel/sharding.py); the state holds plain arrays.
    variables = nn.meta.unbox(model.init(jax.random.key(seed), x, **inputs, train=False))
    params = variables.pop("params")
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params),
            "model_state": dict(variables)}


def field_shardings(model: nn.Module, tx: optax.GradientTransformation, example_batch: dict, seed: int,
                    mesh: jax.sharding.Mesh) -> dict:
    """Where each array of `initial_fields` lies on `mesh`, from shapes alone: the model's
    logical axis names through the rule table (sharding.state_shardings)."""
    return jax.tree.map(lambda leaf: leaf.sharding, abstract_fields(model, tx, example_batch, seed, mesh))


def abstract_fields(model: nn.Module, tx: optax.GradientTransformation, example_batch: dict, seed: int,
                    mesh: jax.sharding.Mesh) -> dict:
    """The shapes, dtypes and shardings of `initial_fields` on `mesh` (a restore's target)."""
    x, inputs = model_inputs(example_batch)
    boxed = jax.eval_shape(lambda: model.init(jax.random.key(0), x, **inputs, train=False))
    logical = nn.get_partition_spec(boxed["params"])
    shapes = jax.eval_shape(lambda: initial_fields(model, tx, example_batch, seed))
    return jax.tree.map(lambda leaf, where: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=where),
                        shapes, sharding.state_shardings(shapes, logical, mesh))


def one_row(arrays: dict) -> dict[str, np.ndarray]:
    """A one-row batch of zeros shaped like `arrays`' rows: what `initial_fields` needs."""
    return {name: np.zeros((1, *values.shape[1:]), values.dtype) for name, values in arrays.items()}


def example_batch(experiment: Experiment) -> dict[str, np.ndarray]:
    """A one-row batch of zeros shaped like the training data."""
    return one_row(experiment.train_data.arrays)
