"""The whole resolved config checked once, before anything is built or written: types were
checked by ml_collections; here are the ranges, the choices and the names that must exist.
Each problem is one UserError line that names the flag to change."""

from research import models, optim, tasks
from research.data import registry, tokenizer
from research.errors import UserError
from research.parallel import sharding


def profile_range(spec: str) -> tuple[int, int] | None:
    """train.profile_steps "START:END" as (START, END); "" as None."""
    if not spec:
        return None
    start, _, end = spec.partition(":")
    try:
        start, end = int(start), int(end)
    except ValueError:
        start = end = -1
    if not 0 <= start < end:
        raise UserError(f"train.profile_steps={spec!r}; write START:END, two steps with 0 <= START < END")
    return start, end


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _positive(config, *keys: str) -> None:
    for key in keys:
        value = config[key.split(".")[0]][key.split(".")[1]]
        _require(value > 0, f"{key}={value!r}; it must be above 0 (--config.{key})")


def _non_negative(config, *keys: str) -> None:
    for key in keys:
        value = config[key.split(".")[0]][key.split(".")[1]]
        _require(value >= 0, f"{key}={value!r}; it must be 0 or more (--config.{key})")


def _one_of(value, choices, key: str) -> None:
    _require(value in choices, f"{key}={value!r}; choose one of {sorted(choices)} (--config.{key})")


def validate(config) -> None:
    """Raises UserError for the first problem in `config` (a resolved experiment config)."""
    _require(isinstance(config.seed, int) and config.seed >= 0,
             f"seed={config.seed!r}; it must be an integer, 0 or more (--config.seed)")
    _one_of(config.data.name, registry.DATASETS, "data.name")
    _one_of(config.data.source, ("auto", "local", "catalog"), "data.source")
    _positive(config, "data.batch_size", "data.vocab_size", "data.max_len", "eval.batch_size")
    _one_of(str(config.data.in_memory).lower(), ("auto", "true", "false"), "data.in_memory")
    _one_of(config.data.tokenizer, tokenizer.KINDS, "data.tokenizer")
    _non_negative(config, "data.in_memory_max_gb", "data.workers", "eval.max_batches",
                  "eval.periodic_max_batches")
    _one_of(config.model.name, models.MODELS, "model.name")
    _one_of(config.task, tasks.TASKS, "task")
    _one_of(config.opt.name, optim.OPTIMIZERS, "opt.name")
    _one_of(config.opt.schedule, optim.SCHEDULES, "opt.schedule")
    _positive(config, "opt.eps")
    _non_negative(config, "opt.lr", "opt.warmup_steps", "opt.weight_decay", "opt.clip_norm")
    for key in ("end_lr_factor", "momentum", "b1", "b2"):
        value = config.opt[key]
        _require(0 <= value <= 1 if key == "end_lr_factor" else 0 <= value < 1,
                 f"opt.{key}={value!r}; it must be in [0, 1{']' if key == 'end_lr_factor' else ')'} "
                 f"(--config.opt.{key})")
    _non_negative(config, "train.epochs", "train.steps", "train.eval_every", "train.checkpoint_every",
                  "mesh.num_devices")
    _require(config.train.epochs > 0 or config.train.steps > 0,
             "nothing to train: set --config.train.steps or --config.train.epochs above 0")
    _positive(config, "train.log_every", "train.keep", "train.steps_per_call", "train.grad_accum_steps")
    sharding.check_mesh_sizes(config.mesh)
    _one_of(config.train.best_mode, ("min", "max"), "train.best_mode")
    _non_negative(config, "train.early_stop_patience")
    _require(not config.train.early_stop_patience or config.train.best_metric,
             "train.early_stop_patience needs train.best_metric, the metric it watches")
    profile_range(config.train.profile_steps)
    if config.train.best_metric:
        task = tasks.for_model(config.model.name, num_classes=2, task=config.task)
        names = [f"eval/{config.eval.split}/{name}" for name in task.SUMMARY]
        _require(config.train.best_metric in names,
                 f"train.best_metric={config.train.best_metric!r} is not a metric this run logs; "
                 f"choose one of {names}, or '' for none (--config.train.best_metric)")
