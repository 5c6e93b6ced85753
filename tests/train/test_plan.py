"""Planning a language model from shapes alone: its parameters, FLOPs and per-device bytes."""

import json

from configs import lm
from research.train import plan
from tests.conftest import run_program


def tiny(**mesh):
    config = lm.get_config("size=tiny")
    config.mesh.update(num_devices=0, data=-1, fsdp=1, tensor=1)
    config.mesh.update(**mesh)
    return config


def test_fsdp_divides_parameter_and_optimizer_bytes_and_the_counts_hold():
    replicated, sharded = plan.plan(tiny(data=4)), plan.plan(tiny(data=1, fsdp=4))
    hidden, depth, vocab, length = 16, 1, 400, 64
    attention = 4 * hidden * hidden + 4 * hidden  # q, k, v and out, with biases.
    mlp = 2 * 4 * hidden * hidden + 4 * hidden + hidden
    per_block = attention + mlp
    norms = 2 * 2 * hidden * depth + 2 * hidden
    expected = vocab * hidden + length * hidden + depth * per_block + norms + hidden * vocab + vocab
    assert replicated["parameters"] == sharded["parameters"] == expected
    assert replicated["bytes_per_device"]["params"] == 4 * expected
    assert sharded["bytes_per_device"]["params"] == expected  # A quarter of the float32 bytes.
    assert sharded["bytes_per_device"]["opt_state"] <= replicated["bytes_per_device"]["opt_state"] / 4 + 16
    matmul_params = expected - vocab * hidden - length * hidden
    assert replicated["flops_per_token"] == 6 * matmul_params + 12 * depth * hidden * length
    assert replicated["bytes_per_device"]["temporaries"] > 0


def test_the_dry_run_prints_the_plan_without_a_workdir():
    result = run_program("experiments.train", "--config=configs/lm.py:size=tiny", "--dry_run",
                         "--config.mesh.fsdp=2")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["mesh"] == {"data": 2, "fsdp": 2, "tensor": 1}
    assert report["parameters"] > 0


def test_xla_flops_per_token_holds_under_gradient_accumulation():
    config = tiny(num_devices=1, data=1)
    config.data.batch_size = 8
    whole = plan.plan(config)["xla_flops_per_token"]
    config.train.grad_accum_steps = 4
    accumulated = plan.plan(config)["xla_flops_per_token"]
    assert abs(accumulated - whole) / whole < 0.1, (whole, accumulated)
