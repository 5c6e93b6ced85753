"""Timing in windows: runners that do n train steps (ours, or a PyTorch twin's) or take n batches
of the input pipeline, timed in rounds that alternate between them so that load from other
processes falls on all alike; and the FLOPs of a compiled program, and the matmul peak that
they are compared with."""

import dataclasses
import math
import statistics
import time

import jax
import jax.numpy as jnp

from research.parallel.inflight import InFlight


@dataclasses.dataclass(frozen=True)
class Windows:
    """`count` rounds of one timed window a runner, after `warmup_steps` untimed steps; a window
    is `steps` steps, or when 0 as many as take about `seconds`."""

    count: int = 5
    seconds: float = 2.0
    steps: int = 0
    warmup_steps: int = 5


class JaxSteps:
    """`steps(n)` runs at least n train steps on one resident batch, as the loop does: calls of
    the compiled multi-step function, `steps_per_call` steps each; returns the steps run."""

    def __init__(self, compiled, state, batches, steps_per_call: int):
        self.compiled, self.state, self.batches = compiled, state, batches
        self.steps_per_call = steps_per_call

    def __call__(self, n: int) -> int:
        calls, in_flight = max(1, math.ceil(n / self.steps_per_call)), InFlight()
        for _ in range(calls):
            self.state, step_metrics = self.compiled(self.state, self.batches)
            in_flight.add(step_metrics)
        jax.block_until_ready((self.state, step_metrics))
        return calls * self.steps_per_call


class PipelineBatches:
    """`batches(n)` takes n batches of the training stream onto the devices, no step."""

    def __init__(self, exp, batch_size: int, workers: int = 0):
        from research.data import pipeline

        self.iterator = pipeline.train_batches(exp.train_data.arrays, batch_size=batch_size, seed=0,
                                               augment=exp.augment, workers=workers)
        self.mesh = exp.mesh

    def __call__(self, n: int) -> int:
        from research.parallel import sharding

        for _ in range(n):
            batch = sharding.put_batch(next(self.iterator), self.mesh)
        jax.block_until_ready(batch)
        return n


def timed_windows(runners: dict, batch_size: int, windows: Windows) -> dict[str, dict]:
    """Examples/s of each runner (`runner(n)` does at least n steps and returns how many): a
    first call, a timed warm-up that sets the window's number of steps, then `windows.count`
    rounds of one window per runner."""
    first_s, steps = {}, {}
    for name, run in runners.items():
        start = time.perf_counter()
        run(1)
        first_s[name] = time.perf_counter() - start
        start = time.perf_counter()
        warmed = run(windows.warmup_steps) or windows.warmup_steps
        step_s = (time.perf_counter() - start) / max(warmed, 1)
        steps[name] = windows.steps or max(1, round(windows.seconds / step_s))
    rates = {name: [] for name in runners}
    for _ in range(windows.count):
        for name, run in runners.items():
            start = time.perf_counter()
            done = run(steps[name]) or steps[name]
            rates[name].append(done * batch_size / (time.perf_counter() - start))
    return {name: {"examples_per_sec": statistics.median(r), "min": min(r), "max": max(r),
                   "steps_per_window": steps[name], "first_step_s": first_s[name], "windows": r}
            for name, r in rates.items()}


def total_flops(compiled) -> float:
    """FLOPs of one call, from XLA's cost analysis (a dict, or a list of them per program)."""
    analysis = compiled.cost_analysis()
    analyses = analysis if isinstance(analysis, list | tuple) else [analysis]
    return float(sum(a.get("flops", 0.0) for a in analyses))


def matmul_peak(size: int, repeats: int, torch: bool = False) -> dict:
    """GFLOP/s of a jitted float32 square matmul: the median of `repeats` calls; with `torch`,
    also PyTorch's on as many threads as this process has cores."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    matmul = jax.jit(lambda x, y: x @ y).lower(a, a).compile()
    matmul(a, a).block_until_ready()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, a).block_until_ready()
        rates.append(total_flops(matmul) / (time.perf_counter() - start) / 1e9)
    peak = {"size": size, "gflops": statistics.median(rates), "min": min(rates), "max": max(rates)}
    if torch:
        from benchmarks import torch_twins

        torch_twins.use_all_cores()
        peak["torch_gflops"] = statistics.median(torch_twins.matmul_gflops(size, len(rates)))
    return peak
