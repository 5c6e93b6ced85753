"""Measures the train step of experiment configs: compile time and examples/s.

  .venv/bin/python scripts/bench.py --config=configs/fashion_mnist_cnn.py \
      --config=configs/fashion_mnist_mlp.py [--windows=5 --steps_per_window=50]

Examples/s is the median over timed windows of back-to-back steps on one resident batch,
after a warm-up; it measures the step alone, not the input pipeline or the loop.
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_multi_string("config", None, "Config file(s), optionally with ':arg'.")
flags.DEFINE_integer("windows", 5, "Timed windows per config.")
flags.DEFINE_integer("steps_per_window", 50, "Train steps per window.")
flags.DEFINE_integer("warmup_steps", 10, "Untimed steps after compiling.")
flags.mark_flag_as_required("config")


def load_config(spec: str):
    """`path.py[:arg]` to a config, as --config=path.py:arg reads it."""
    import importlib.util

    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("bench_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def bench(spec: str) -> dict:
    from research import experiment, sharding
    from research.data import pipeline

    config = load_config(spec)
    exp = experiment.build(config)
    state = experiment.initial_state(exp, config.seed)
    train_step, _ = experiment.jit_steps(exp, config.seed, state)
    batch = sharding.put_batch(
        next(pipeline.train_batches(exp.train_data.arrays, batch_size=config.data.batch_size, seed=0)),
        exp.mesh)
    start = time.perf_counter()
    compiled = train_step.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    for _ in range(flags.FLAGS.warmup_steps):
        state, step_metrics = compiled(state, batch)
    jax.block_until_ready(step_metrics)
    rates = []
    for _ in range(flags.FLAGS.windows):
        start = time.perf_counter()
        for _ in range(flags.FLAGS.steps_per_window):
            state, step_metrics = compiled(state, batch)
        jax.block_until_ready((state, step_metrics))
        rates.append(flags.FLAGS.steps_per_window * config.data.batch_size / (time.perf_counter() - start))
    return {"config": spec, "model": config.model.name, "batch_size": config.data.batch_size,
            "devices": exp.mesh.size, "compile_s": compile_s,
            "examples_per_sec": statistics.median(rates), "min": min(rates), "max": max(rates)}


def main(argv):
    del argv
    rows = [bench(spec) for spec in flags.FLAGS.config]
    print(f"\n{jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}")
    print("| config | model | batch | devices | compile s | train step examples/s (median [min, max]) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['config']} | {r['model']} | {r['batch_size']} | {r['devices']} | {r['compile_s']:.2f} "
              f"| {r['examples_per_sec']:,.0f} [{r['min']:,.0f}, {r['max']:,.0f}] |")


if __name__ == "__main__":
    app.run(main)
