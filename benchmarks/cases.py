"""What a --config names: a config file (`path.py[:arg]`) with its real data, or a model on random
token ids (`transformer`, `lm[:size=S]`), each built into the Experiment the train step runs."""

import dataclasses
import importlib.util
import os

import ml_collections
import numpy as np

from configs import common

# Config paths are read from here, as the documented command lines give them.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def transformer_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The Transformer classifier of research.models.transformer at its default sizes, over
    random token ids: 8,000-token vocabulary, 256 tokens, 5 classes, batch 32, Adam 1e-3."""
    config = common.base_config()
    config.data.update(name="random_tokens", batch_size=32, vocab_size=8000, max_len=256)
    config.model = ml_collections.ConfigDict({
        "name": "transformer", "max_len": 256, "hidden": 128, "depth": 2, "heads": 4,
        "mlp_dim": 512, "dropout": 0.1, "causal": False, "pool": "mean"})
    return config


def lm_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """configs/lm.py (`lm:size=124m` picks its size; `small` by default) over random token ids:
    every row a whole window of max_len tokens, as the language model's training data is cut."""
    config = load_config("configs/lm.py" + (f":{arg}" if arg else ""))
    config.data.name = "random_tokens"
    return config


# name: (config from the text after "name:", num_classes)
CASES = {"transformer": (transformer_config, 5), "lm": (lm_config, 2)}


def load_config(spec: str) -> ml_collections.ConfigDict:
    """`path.py[:arg]` to a config, as --config=path.py:arg reads it."""
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("bench_config", os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def random_tokens(num_examples: int, max_len: int, vocab_size: int, num_classes: int, seed=0) -> dict:
    """Token rows with lengths uniform in [max_len / 2, max_len], padded, as research.data.text
    makes them."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(max_len // 2, max_len + 1, num_examples)
    mask = np.arange(max_len)[None] < lengths[:, None]
    tokens = np.where(mask, rng.integers(1, vocab_size, (num_examples, max_len)), 0).astype(np.int32)
    return {"tokens": tokens, "token_mask": mask,
            "label": rng.integers(0, num_classes, num_examples).astype(np.int32)}


def build_case(spec: str):
    """(config, experiment, has_real_data) for a --config value."""
    from research import models, optim, tasks
    from research.data import sources
    from research.parallel import sharding
    from research.run import experiment

    name, _, arg = spec.partition(":")
    if name not in CASES:
        config = load_config(spec)
        return config, experiment.build(config), True
    make_config, num_classes = CASES[name]
    config = make_config(arg or None)
    arrays = random_tokens(64 * config.data.batch_size, config.data.max_len, config.data.vocab_size,
                           num_classes)
    task = tasks.for_model(config.model.name, num_classes)
    if task.predicts_tokens:  # Whole windows, as research.data.text cuts them.
        arrays = {"tokens": np.where(arrays["tokens"] > 0, arrays["tokens"], 1),
                  "token_mask": np.ones_like(arrays["token_mask"]), "label": np.zeros_like(arrays["label"])}
    split = sources.Split(arrays, num_classes=num_classes,
                          class_names=tuple(map(str, range(num_classes))))
    tx, schedule = optim.make_optimizer(config.opt, total_steps=1000)
    pieces = dict(
        model=models.build(config.model, num_classes, vocab_size=config.data.vocab_size),
        task=task, loss=tasks.TaskLoss(task), tx=tx, schedule=schedule,
        train_data=split, eval_data=split, mesh=sharding.make_mesh(config.mesh),
        augment=None, steps_per_epoch=len(split) // config.data.batch_size, total_steps=1000,
        grad_accum_steps=config.train.grad_accum_steps)
    # Fields an Experiment may have beyond these (a tokenizer, ...) are unused by the step.
    fields = {f.name: pieces.get(f.name) for f in dataclasses.fields(experiment.Experiment)}
    return config, experiment.Experiment(**fields), False
