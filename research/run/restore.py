"""A finished (or running) run brought back from its workdir: its config, what the config
builds, and a checkpoint's model variables laid out on the mesh. What evaluation, export,
prediction, serving and post-training quantization start from."""

import dataclasses
import os

from research import workdir as workdir_lib
from research.run import checkpoint, experiment


@dataclasses.dataclass(frozen=True)
class Restored:
    config: object
    experiment: experiment.Experiment
    variables: dict  # {"params": ..., **model_state}, on the experiment's mesh.
    step: int


def restore(workdir: str, checkpoint_name: str = "best", *, split_name: str | None = None,
            one_device: bool = False) -> Restored:
    """The run of `workdir` rebuilt from its config, with the variables of its checkpoint
    `checkpoint_name` (best, latest or a step), evaluating `split_name` (default: the run's);
    `one_device` lays it out on one device whatever the run's mesh was."""
    config = workdir_lib.load_config(workdir)
    if split_name is not None:
        config.eval.split = split_name
    if one_device:
        config.mesh.update(num_devices=1, data=-1, fsdp=1, tensor=1)
    exp = experiment.build(config, workdir)
    example = experiment.example_batch(exp)
    abstract = experiment.abstract_fields(exp.model, exp.tx, example, config.seed, exp.mesh)
    with checkpoint.Checkpoints(os.path.join(workdir, "checkpoints"), read_only=True,
                                best_metric=config.train.best_metric,
                                best_mode=config.train.best_mode) as checkpoints:
        step = checkpoints.resolve(checkpoint_name)
        saved = checkpoints.restore(step, abstract)
    return Restored(config, exp, {"params": saved["params"], **saved["model_state"]}, step)
