"""Knowledge distillation (`config.distill.teacher=WORKDIR`): a finished run of any family, its
config read from its workdir, teaches the student inside the same jitted train step, as a
wrapper of the student's loss.

The student's loss is `alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * task loss`
(Hinton et al. 2015), the distributions softened by the temperature T: per example for
classifiers (a binary classifier's one logit z as the two classes' logits [0, z]), per
predicted token for language models. The teacher runs in eval mode; its variables are the
loss's frozen input, an argument of the step (not donated, laid out on the mesh by its own
logical axes like the student's), so a run still compiles one train step. Logged: `train/distill_kl` and
`train/task_loss`.
"""

import dataclasses
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from research import models, tasks
from research import workdir as workdir_lib
from research.compress.method import Method
from research.errors import UserError
from research.models import model_inputs
from research.parallel import sharding


@dataclasses.dataclass(frozen=True)
class Teacher:
    model: nn.Module
    variables: dict  # On the mesh; an argument of the train step.
    temperature: float
    alpha: float
    workdir: str
    step: int


@dataclasses.dataclass(frozen=True)
class DistillationLoss:
    """`alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * inner`, the teacher's logits
    computed outside the differentiated function. Logged beside the inner loss's metrics:
    `task_loss` (the inner loss) and `distill_kl`."""

    inner: tasks.Loss
    teacher: Teacher
    task: tasks.Task

    @property
    def frozen(self) -> tuple:
        return self.teacher.variables, self.inner.frozen

    def targets(self, frozen, batch: dict) -> tuple:
        teacher_variables, inner_frozen = frozen
        x, inputs = model_inputs(batch)
        teacher_logits = self.teacher.model.apply(teacher_variables, x, **inputs, train=False)
        return teacher_logits, self.inner.targets(inner_frozen, batch)

    def __call__(self, logits: jax.Array, batch: dict, targets) -> tuple[jax.Array, dict]:
        teacher_logits, inner_targets = targets
        loss, task_metrics = self.inner(logits, batch, inner_targets)
        temperature, alpha = self.teacher.temperature, self.teacher.alpha
        kl = kl_divergence(logits, teacher_logits, batch, self.task, temperature)
        task_metrics = {**task_metrics, "task_loss": loss, "distill_kl": kl}
        return alpha * temperature ** 2 * kl + (1 - alpha) * loss, task_metrics


def teacher_config(distill_config):
    """The teacher run's own config, read from its workdir."""
    workdir = distill_config.teacher
    if not os.path.exists(os.path.join(workdir, "config.json")):
        raise UserError(f"distill.teacher: {workdir} is not the workdir of a run (no config.json)")
    return workdir_lib.load_config(workdir)


def check(config, teacher_cfg) -> None:
    """The teacher must predict what the student learns, from the same inputs."""
    if not 0.0 <= config.distill.alpha <= 1.0:
        raise UserError(f"distill.alpha={config.distill.alpha}; it weighs the two losses, from 0 to 1")
    if config.distill.temperature <= 0:
        raise UserError(f"distill.temperature={config.distill.temperature}; it must be above 0")
    task, teacher_task = config.task, teacher_cfg.task
    student_lm = models.is_language_model(config.model.name)
    if "mlm" in (task, teacher_task):
        raise UserError("distillation of masked language models is not supported")
    if student_lm != models.is_language_model(teacher_cfg.model.name) or task != teacher_task:
        raise UserError(f"distill.teacher {config.distill.teacher} trained a {teacher_cfg.model.name!r} "
                        f"model (task {teacher_task}); the student is a {config.model.name!r} (task {task}): "
                        "a teacher must predict what its student learns")
    as_read = lambda value: list(value) if isinstance(value, tuple) else value  # noqa: E731  (JSON's lists)
    for key in ("name", "classes", "files"):
        if as_read(teacher_cfg.data.get(key)) != as_read(config.data.get(key)):
            raise UserError(f"distill.teacher was trained on data.{key}={teacher_cfg.data.get(key)!r}; "
                            f"this run has {config.data.get(key)!r}")


def load(config, mesh, example_batch: dict, num_outputs: int, vocab_size: int | None,
         load_variables) -> Teacher:
    """The teacher of `config.distill`, its variables from its checkpoint
    (`distill.checkpoint`: best, latest or a step, read by `load_variables`) laid out on `mesh`."""
    teacher_cfg = teacher_config(config.distill)
    check(config, teacher_cfg)
    model = models.build(teacher_cfg.model, num_outputs, vocab_size=vocab_size, task=teacher_cfg.task)
    x, inputs = model_inputs(example_batch)
    boxed = jax.eval_shape(lambda: model.init(jax.random.key(0), x, **inputs, train=False))
    logical = nn.get_partition_spec(boxed)
    step, saved = load_variables(config.distill.teacher, config.distill.checkpoint)
    if _shapes(nn.meta.unbox(boxed)) != _shapes(saved):
        raise UserError(f"distill.teacher: the checkpoint of {config.distill.teacher} does not fit the model "
                        "its config builds for this run's data (another vocabulary or input shape?)")
    shardings = jax.tree.map(
        lambda spec, leaf: jax.sharding.NamedSharding(mesh, sharding.param_spec(np.shape(leaf), spec, mesh)),
        logical, saved, is_leaf=lambda s: isinstance(s, jax.sharding.PartitionSpec))
    variables = jax.tree.map(lambda leaf, where: jax.device_put(np.asarray(leaf), where), saved, shardings)
    return Teacher(model, variables, float(config.distill.temperature), float(config.distill.alpha),
                   config.distill.teacher, step)


def _shapes(tree) -> dict:
    return {jax.tree_util.keystr(path): tuple(np.shape(leaf))
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def kl_divergence(student_logits: jax.Array, teacher_logits: jax.Array, batch: dict, task: tasks.Task,
                  temperature: float) -> jax.Array:
    """KL(teacher_T || student_T), the mean over examples (classifiers) or over the predictions
    that count (tasks over tokens)."""
    student = task.class_logits(student_logits) / temperature
    teacher = task.class_logits(jax.lax.stop_gradient(teacher_logits)) / temperature
    teacher_log_p = jax.nn.log_softmax(teacher, axis=-1)
    kl = (jnp.exp(teacher_log_p) * (teacher_log_p - jax.nn.log_softmax(student, axis=-1))).sum(-1)
    counted = task.counted(batch)
    if counted is not None:
        weights = counted.astype(kl.dtype)
        return (task.predicting(kl) * weights).sum() / jnp.maximum(weights.sum(), 1.0)
    return kl.mean()


@dataclasses.dataclass(frozen=True)
class DistillMethod(Method):
    """`distill.teacher` names a finished run: the loss becomes `DistillationLoss`."""

    name: str = "distill"
    vectorizable: bool = False  # The teacher's variables are one step input, not one a run.

    def selected(self, config) -> bool:
        return bool(config.distill.teacher)

    def apply(self, config, parts, context):
        teacher = load(config, context.mesh, context.example_batch, context.num_outputs,
                       context.vocab_size, context.load_variables)
        return dataclasses.replace(parts, loss=DistillationLoss(parts.loss, teacher, context.task))

    def tokenizer_source(self, config) -> str:
        """A student reads text with its teacher's tokenizer."""
        return config.distill.teacher


METHOD = DistillMethod()
