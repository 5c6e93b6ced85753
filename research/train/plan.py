"""What a config's train step needs, from shapes alone: parameters, FLOPs per example and the
bytes each device holds, read from the step compiled ahead of time on the config's mesh. No
array is made, so a model too big for this machine can be planned on it (with forced CPU
devices: XLA_FLAGS=--xla_force_host_platform_device_count=8).
"""

import math

import jax
import jax.numpy as jnp

from research import models, optim, tasks
from research.parallel import collectives, sharding
from research.run import experiment
from research.train import steps
from research.train.state import TrainState


def text_example(batch_size: int, length: int) -> dict:
    """The abstract batch of a text model: token ids and their mask."""
    return {"tokens": jax.ShapeDtypeStruct((batch_size, length), jnp.int32),
            "token_mask": jax.ShapeDtypeStruct((batch_size, length), jnp.bool_)}


def transformer_flops_per_token(params: int, depth: int, hidden: int, length: int) -> float:
    """Training FLOPs a token (forward and backward): 6 per parameter for its matmuls, plus the
    attention scores and weighted values, 12 x depth x hidden x length (PaLM's appendix B)."""
    return 6.0 * params + 12.0 * depth * hidden * length


def model_flops_per_token(parameters: int, model_config, vocab_size: int, length: int) -> float:
    """`transformer_flops_per_token` of a Transformer-family model with `parameters` in all: its
    token and position embeddings are lookups, not matmuls, so they are left out of N."""
    embeddings = model_config.max_len * model_config.hidden + vocab_size * model_config.hidden
    return transformer_flops_per_token(parameters - embeddings, model_config.depth, model_config.hidden,
                                       length)


def plan(config) -> dict:
    """The report for a text config (`model.name` lm or transformer) on its mesh."""
    mesh = sharding.make_mesh(config.mesh)
    length = config.data.max_len
    batch = text_example(config.data.batch_size, length)
    batch = {name: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding.batch_sharded(mesh))
             for name, s in batch.items()}
    abstract, lowered = _lowered_step(config, config.model, mesh, batch)
    compiled = lowered.compile()
    memory = compiled.memory_analysis()
    cost, devices_counted = compiled.cost_analysis(), mesh.size  # One device's share, of mesh.size.
    if config.model.get("scan"):
        # XLA counts a loop's body once: the FLOPs of scanned blocks are those of the same
        # step unrolled, counted before compiling it (the whole step, not a device's share).
        unrolled = config.model.copy_and_resolve_references()
        unrolled.scan = False
        cost, devices_counted = _lowered_step(config, unrolled, mesh, batch)[1].cost_analysis(), 1
    cost = cost[0] if isinstance(cost, list) else cost
    parameters = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(abstract.params))
    tokens = config.data.batch_size * length
    return {
        "mesh": dict(mesh.shape), "parameters": parameters,
        "flops_per_token": model_flops_per_token(parameters, config.model, config.data.vocab_size, length),
        # XLA counts a loop's body once: with k microbatches, the scanned forward and backward
        # passes count k times (the optimizer's update after the loop then counts k times too,
        # a small overcount beside them).
        "xla_flops_per_token": float(cost.get("flops", math.nan)) * config.train.grad_accum_steps
                               * devices_counted / tokens,
        "bytes_per_device": {
            "params": sharding.per_device_bytes(abstract.params),
            "opt_state": sharding.per_device_bytes(abstract.opt_state),
            "temporaries": int(memory.temp_size_in_bytes) if memory is not None else None,
        },
        # What one step moves between devices, per device, from the compiled step's HLO.
        "collective_bytes_per_device": collectives.collective_bytes(compiled.as_text()),
    }


def _lowered_step(config, model_config, mesh, batch: dict):
    """The abstract train state of `model_config` on `mesh`, and its train step lowered for it."""
    model = models.build(model_config, num_classes=2, vocab_size=config.data.vocab_size, task=config.task)
    task = tasks.for_model(config.model.name, num_classes=2, task=config.task,
                           vocab_size=config.data.vocab_size)
    tx, schedule = optim.make_optimizer(config.opt, total_steps=max(config.train.steps, 1))
    example = experiment.one_row(batch)
    abstract = TrainState(**experiment.abstract_fields(model, tx, example, config.seed, mesh))
    layout = jax.tree.map(lambda leaf: leaf.sharding, abstract)
    train_step = steps.make_train_step(model, tx, schedule, config.seed, task, tasks.TaskLoss(task),
                                       config.train.grad_accum_steps)
    jitted = jax.jit(sharding.on_mesh(train_step, mesh), donate_argnums=0,
                     out_shardings=(layout, sharding.replicated(mesh)))
    return abstract, jitted.lower(abstract, batch)
