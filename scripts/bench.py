"""Benchmarks experiment configs on this machine and, with --torch, the same models in PyTorch.

  .venv/bin/python scripts/bench.py --torch --json_out=bench.json --md_out=bench.md
  .venv/bin/python scripts/bench.py --config=configs/fashion_mnist_cnn.py --profile_steps=20

For each --config (`path.py[:arg]`; `transformer`: the Transformer classifier on random
tokens, defined below; `lm[:size=S]`: configs/lm.py's language model on random tokens) it
measures in one run:
  - the train step alone: compile time; examples/s, the median over timed windows of
    back-to-back calls on one resident batch after a warm-up (calls of train.steps_per_call
    steps, as the loop makes them); FLOPs from XLA's cost analysis of the compiled step, the
    FLOP/s they make and the fraction of the matmul peak measured at the start of the run;
  - with --torch (the `bench` extra, `scripts/setup.sh --bench`): the PyTorch twin of the
    model (scripts/bench_torch.py), timed in windows alternating with ours so that load from
    other processes falls on both alike; --torch_compile adds torch.compile;
  - the input pipeline alone: pipeline.train_batches + sharding.put_batch, no step; with
    --streamed_workers=N (repeatable), also with the split streamed from disk and N Grain
    worker processes;
  - end to end: research.train.loop.train_and_evaluate in a temporary workdir at the config's
    log, eval and checkpoint cadence, over a span of steps that holds one evaluation and
    checkpoint (timed from the TensorBoard wall times of the first and last train log rows,
    so start-up is excluded, less the compilation JAX reports inside that span); the loop's
    overhead is 1 - end-to-end / step, the step timed in windows just before and after it;
  - for language models, tokens/s and MFU: model FLOPs (6 x non-embedding parameters +
    attention, a token) over the matmul peak, or over the chip's peak on a known accelerator;
  - with --profile_steps: the step's most expensive XLA ops, from a profiler trace.
Once per run: the time of `python -m experiments.train --help`, and launch to the first
finished train step of --startup_config (until its metrics.jsonl has the step-1 row).
"""

import collections
import copy
import dataclasses
import glob
import gzip
import importlib.metadata
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from configs import common  # noqa: E402
from research import platform  # noqa: E402
from research.parallel.inflight import InFlight  # noqa: E402

DEFAULT_CONFIGS = ["configs/fashion_mnist_mlp.py", "configs/fashion_mnist_cnn.py", "transformer", "lm"]
flags.DEFINE_multi_string("config", DEFAULT_CONFIGS, "Config file(s), optionally with ':arg', or "
                          "'transformer' (random tokens, sizes in transformer_config), or 'lm[:size=S]' "
                          "(configs/lm.py on random tokens).")
flags.DEFINE_integer("windows", 5, "Timed windows per measurement.")
flags.DEFINE_float("window_seconds", 2.0, "Target length of a window; sets its number of steps.")
flags.DEFINE_integer("steps_per_window", 0, "Steps per window; 0: from --window_seconds.")
flags.DEFINE_integer("warmup_steps", 5, "Untimed steps before the windows.")
flags.DEFINE_bool("torch", False, "Time the PyTorch twin of each model beside ours.")
flags.DEFINE_bool("torch_compile", False, "Also time the PyTorch twin under torch.compile.")
flags.DEFINE_bool("pipeline", True, "Time the input pipeline alone.")
flags.DEFINE_multi_integer("streamed_workers", [], "Also time the input pipeline with the split "
                           "streamed from disk (data.in_memory=false), with each of these numbers "
                           "of Grain worker processes.")
flags.DEFINE_integer("e2e_steps", 0, "Steps of the end-to-end run; 0: enough for one evaluation "
                     "period between two log rows. -1: skip.")
flags.DEFINE_integer("profile_steps", 0, "Steps to trace for the per-op profile; 0: none.")
flags.DEFINE_integer("profile_top", 12, "Ops shown per profile.")
flags.DEFINE_integer("matmul_size", 2048, "Side of the float32 matmul that measures the peak.")
flags.DEFINE_string("startup_config", "configs/fashion_mnist_cnn.py",
                    "Config for the launch-to-first-step time; '' skips the start-up measurements.")
flags.DEFINE_string("json_out", "", "Write the measurements here as JSON.")
flags.DEFINE_string("md_out", "", "Write the markdown tables here (they are printed too).")
FLAGS = flags.FLAGS


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

# Vendors' dense bfloat16 peaks, TFLOP/s a chip, by the start of JAX's device_kind: on these
# accelerators each step's FLOP/s is also given as a fraction of the chip's peak (MFU).
VENDOR_PEAK_TFLOPS = {
    "NVIDIA H100": 989.4, "NVIDIA H200": 989.4, "NVIDIA A100": 312.0, "NVIDIA L4": 121.0,
    "TPU v4": 275.0, "TPU v5 lite": 197.0, "TPU v5p": 459.0, "TPU v5": 459.0, "TPU v6 lite": 918.0,
}


def vendor_peak_tflops(device_kind: str) -> float | None:
    return next((peak for kind, peak in VENDOR_PEAK_TFLOPS.items() if device_kind.startswith(kind)), None)


def load_config(spec: str) -> ml_collections.ConfigDict:
    """`path.py[:arg]` to a config, as --config=path.py:arg reads it."""
    import importlib.util

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


def timed_windows(runners: dict, batch_size: int) -> dict[str, dict]:
    """Examples/s of each runner (`runner(n)` does at least n steps and returns how many): a
    first call, a timed warm-up that sets the window's number of steps, then FLAGS.windows
    rounds of one window per runner."""
    first_s, steps = {}, {}
    for name, run in runners.items():
        start = time.perf_counter()
        run(1)
        first_s[name] = time.perf_counter() - start
        start = time.perf_counter()
        warmed = run(FLAGS.warmup_steps) or FLAGS.warmup_steps
        step_s = (time.perf_counter() - start) / max(warmed, 1)
        steps[name] = FLAGS.steps_per_window or max(1, round(FLAGS.window_seconds / step_s))
    rates = {name: [] for name in runners}
    for _ in range(FLAGS.windows):
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


def matmul_peak() -> dict:
    """GFLOP/s of a jitted float32 square matmul: the median of several calls."""
    n = FLAGS.matmul_size
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    matmul = jax.jit(lambda x, y: x @ y).lower(a, a).compile()
    matmul(a, a).block_until_ready()
    rates = []
    for _ in range(max(FLAGS.windows, 7)):
        start = time.perf_counter()
        matmul(a, a).block_until_ready()
        rates.append(total_flops(matmul) / (time.perf_counter() - start) / 1e9)
    peak = {"size": n, "gflops": statistics.median(rates), "min": min(rates), "max": max(rates)}
    if FLAGS.torch or FLAGS.torch_compile:
        import bench_torch

        bench_torch.use_all_cores()
        peak["torch_gflops"] = statistics.median(bench_torch.matmul_gflops(n, len(rates)))
    return peak


def _readable(op_name: str) -> str:
    """'jit(train_step)/transpose(jvp(CNN))/Conv_1/conv' -> 'backward: Conv_1/conv'."""
    op_name = re.sub(r"^jit\(\w+\)/", "", op_name)
    op_name = re.sub(r"^transpose\(jvp\(\w+\)\)/", "backward: ", op_name)
    return re.sub(r"^jvp\(\w+\)/", "forward: ", op_name)


def hlo_ops(hlo_text: str) -> dict[str, dict]:
    """Instruction name -> {"shape", "what"} from optimized HLO text; "what" is the JAX op the
    instruction came from (its own metadata, else the first in the computation it calls)."""
    instruction = re.compile(r"\s*(?:ROOT\s+)?%([^\s=]+)\s*=\s*(.+?)\s+([a-z][\w\-]*)\(")
    computation = re.compile(r"(?:ENTRY\s+)?%([^\s(]+)\s*\(")
    ops, names_in, current = {}, collections.defaultdict(list), None
    for line in hlo_text.splitlines():
        if (m := instruction.match(line)) is None:
            if (c := computation.match(line)) is not None:
                current = c.group(1)
            continue
        op_name = re.search(r'op_name="([^"]*)"', line)
        calls = re.search(r"calls=%([^\s,}]+)", line)
        what = _readable(op_name.group(1)) if op_name else ""
        ops[m.group(1)] = {"shape": re.sub(r"\{[^}]*\}", "", m.group(2)), "opcode": m.group(3),
                           "what": what, "calls": calls.group(1) if calls else None}
        if what:
            names_in[current].append(what)
    for op in ops.values():
        if not op["what"]:
            op["what"] = next(iter(names_in.get(op["calls"], [])), op["opcode"])
    return ops


def op_profile(compiled, run: JaxSteps, steps: int) -> dict:
    """Time per step of the compiled step's ops, from a jax.profiler trace of `steps` steps. Ops on
    different threads can overlap, so their sum may exceed the step's wall time."""
    ops = hlo_ops(compiled.as_text())
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir)
        start = time.perf_counter()
        steps = run(steps)
        wall_s = time.perf_counter() - start
        jax.profiler.stop_trace()
        [trace_file] = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
        with gzip.open(trace_file) as f:
            events = json.load(f)["traceEvents"]
    micros = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and event.get("name") in ops:
            micros[event["name"]] += event["dur"]
    total = sum(micros.values())
    top = [{"op": name, "ms_per_step": us / 1000 / steps, "share": us / total, "what": ops[name]["what"],
            "shape": ops[name]["shape"]} for name, us in micros.most_common(FLAGS.profile_top)]
    return {"steps": steps, "step_ms": 1000 * wall_s / steps, "op_ms_per_step": total / 1000 / steps,
            "top_ops": top}


class CompileTimes:
    """When and for how long JAX traced, lowered and compiled (its jax.monitoring events)."""

    def __init__(self):
        self.events = []  # (end wall time, seconds)
        jax.monitoring.register_event_duration_secs_listener(self._record)

    def _record(self, event: str, duration_secs: float, **kwargs) -> None:
        if event.startswith("/jax/core/compile/"):
            self.events.append((time.time(), duration_secs))

    def seconds_between(self, start: float, end: float) -> float:
        return sum(seconds for ended, seconds in self.events if start <= ended <= end)


COMPILE_TIMES = CompileTimes()


def end_to_end(config, steps_per_epoch: int) -> dict:
    """Examples/s of train_and_evaluate between its first and last train log rows, a span that
    holds one evaluation and checkpoint, less the time spent compiling in it (a step compiled
    once a process: a short span would otherwise be mostly compilation); and the loop's own
    figure (manifest.json), which leaves evaluation and checkpoint time out."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from research.train import loop

    cadence = loop.Cadence.of(config.train, steps_per_epoch, total_steps=0)
    log_every, eval_every = cadence.log_every, cadence.eval_every
    steps = FLAGS.e2e_steps or log_every * math.ceil((eval_every + log_every) / log_every)
    config = copy.deepcopy(config)
    config.train.steps = steps
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        loop.train_and_evaluate(config, workdir)
        wall_s = time.perf_counter() - start
        events = EventAccumulator(workdir)
        events.Reload()
        logged = events.Scalars("train/loss")
        with open(os.path.join(workdir, "manifest.json")) as f:
            session = json.load(f)["sessions"][-1]
    first, last = logged[0], logged[-1]
    if last.step <= first.step:
        raise ValueError(f"the end-to-end run of {steps} steps logged fewer than two train rows; "
                         "raise --e2e_steps")
    compile_s = COMPILE_TIMES.seconds_between(first.wall_time, last.wall_time)
    span_s = last.wall_time - first.wall_time - compile_s
    # An evaluation at step s comes after that step's log row.
    evaluations = sum(first.step <= s < last.step for s in range(eval_every, steps, eval_every))
    return {"steps": steps, "span": [first.step, last.step], "evaluations_in_span": evaluations,
            "compile_s_in_span": compile_s,
            "examples_per_sec": (last.step - first.step) * config.data.batch_size / span_s,
            "loop_examples_per_sec_manifest": session.get("train_examples_per_sec"), "wall_s": wall_s}


def streamed_pipeline(config, batch_size: int) -> dict[str, dict]:
    """The input pipeline alone with the training split streamed from its prepared files
    (data.in_memory=false), for each of --streamed_workers."""
    from research.run import experiment

    config = copy.deepcopy(config)
    config.data.in_memory = "false"
    streamed = experiment.build(config)  # Text: writes the token files on first use.
    rates = {}
    for workers in FLAGS.streamed_workers:
        runner = PipelineBatches(streamed, batch_size, workers=workers)
        rates[str(workers)] = timed_windows({"streamed": runner}, batch_size)["streamed"]
        runner.iterator.close()
    return rates


def bench(spec: str) -> dict:
    from research.data import pipeline
    from research.parallel import sharding
    from research.train import plan
    from research.train import state as state_lib
    from research.train import steps as steps_lib

    config, exp, has_real_data = build_case(spec)
    batch_size = config.data.batch_size
    state = state_lib.initial_state(exp, config.seed)
    steps = steps_lib.jit_steps(exp, config.seed, state, config.train.steps_per_call)
    host_batch = next(pipeline.train_batches(exp.train_data.arrays, batch_size=batch_size, seed=0))
    batch = sharding.put_batch(host_batch, exp.mesh)
    start = time.perf_counter()
    compiled = steps.train.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    # The loop's calls: several steps each when the config asks for it (FLOPs still come from
    # the single step: XLA's cost analysis does not count the iterations of a loop).
    steps_per_call = config.train.steps_per_call
    if steps_per_call > 1:
        batches = sharding.put_batch(pipeline.stack([host_batch] * steps_per_call), exp.mesh, leading_axes=1)
        multi = steps.multi.lower(state, batches).compile()
        ours = JaxSteps(multi, state, batches, steps_per_call)
    else:
        ours = JaxSteps(compiled, state, batch, 1)
    runners = {"ours": ours}
    if FLAGS.torch or FLAGS.torch_compile:
        import bench_torch

        bench_torch.use_all_cores()
        num_classes = exp.train_data.num_classes
        vocab_size = getattr(exp.model, "vocab_size", None)
        variants = {"torch": False, "torch_compile": True} if FLAGS.torch_compile else {"torch": False}
        for name, compile_model in variants.items():
            try:
                twin = bench_torch.build(config.model, host_batch, num_classes, vocab_size)
                runners[name] = bench_torch.TrainSteps(twin, config.opt, host_batch, compile=compile_model)
            except ValueError as e:  # No twin for this model: our columns only.
                print(f"{spec}: {e}", file=sys.stderr)
    timings = timed_windows(runners, batch_size)
    # The compiled program is one device's share of the step.
    flops_per_step = total_flops(compiled) * exp.mesh.size
    row = {"config": spec, "model": config.model.name, "batch_size": batch_size, "devices": exp.mesh.size,
           "steps_per_call": steps_per_call,
           "compile_s": compile_s, "step": timings.pop("ours"),
           "flops_per_example": flops_per_step / batch_size, **timings}
    row["step"]["gflops"] = flops_per_step / batch_size * row["step"]["examples_per_sec"] / 1e9
    if exp.task.predicts_tokens:
        parameters = sum(leaf.size for leaf in jax.tree.leaves(state.params))
        row["lm"] = {"tokens_per_example": config.data.max_len, "parameters": parameters,
                     "model_flops_per_token": plan.model_flops_per_token(
                         parameters, config.model, exp.model.vocab_size, config.data.max_len)}
    if FLAGS.pipeline:
        row["pipeline"] = timed_windows({"pipeline": PipelineBatches(exp, batch_size)},
                                        batch_size)["pipeline"]
    if FLAGS.pipeline and FLAGS.streamed_workers and has_real_data:
        row["pipeline_streamed"] = streamed_pipeline(config, batch_size)
    if FLAGS.profile_steps:
        row["profile"] = op_profile(ours.compiled, ours, FLAGS.profile_steps)
    if has_real_data and FLAGS.e2e_steps >= 0:
        row["e2e"] = end_to_end(config, exp.steps_per_epoch)
        # This machine's speed drifts by 10% over minutes: the overhead compares the loop with
        # the step's windows taken just before and just after it.
        after = timed_windows({"ours": ours}, batch_size)["ours"]
        around = statistics.median(row["step"]["windows"] + after["windows"])
        row["e2e"].update(step_examples_per_sec_around=around,
                          loop_overhead=1 - row["e2e"]["examples_per_sec"] / around)
    return row


def wait_for_first_step(process: subprocess.Popen, metrics_path: str) -> float | None:
    """Seconds until metrics.jsonl has a train row (the loop logs it after the step's metrics
    reach the host), or None if the process exits first."""
    start = time.perf_counter()
    while process.poll() is None:
        if os.path.exists(metrics_path):
            with open(metrics_path) as f:
                if any("train/loss" in line for line in f):
                    return time.perf_counter() - start
        time.sleep(0.01)
    return None


def startup(config_spec: str) -> dict:
    """Wall times of `experiments.train --help` (median of 3) and of a one-step run of
    `config_spec`: launch to its first train row, and to the process's exit."""
    command = [sys.executable, "-m", "experiments.train"]
    help_times = []
    for _ in range(3):
        start = time.perf_counter()
        shown = subprocess.run([*command, "--help"], cwd=ROOT, capture_output=True, text=True)
        help_times.append(time.perf_counter() - start)
        if "--workdir" not in shown.stdout:  # absl exits with 1 after --help.
            raise RuntimeError(f"experiments.train --help failed:\n{shown.stderr[-2000:]}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir, log_path = os.path.join(tmp, "run"), os.path.join(tmp, "log")
        with open(log_path, "w") as log:
            start = time.perf_counter()
            process = subprocess.Popen(
                [*command, f"--config={config_spec}", f"--workdir={workdir}", "--config.train.steps=1"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            first_step_s = wait_for_first_step(process, os.path.join(workdir, "metrics.jsonl"))
            process.wait()
            exit_s = time.perf_counter() - start
        if process.returncode or first_step_s is None:
            with open(log_path) as f:
                raise RuntimeError(f"the one-step run of {config_spec} failed:\n{f.read()[-2000:]}")
    return {"help_s": statistics.median(help_times), "config": config_spec,
            "launch_to_first_step_s": first_step_s, "launch_to_exit_s": exit_s}


def machine() -> dict:
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    info = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "device": jax.devices()[0].device_kind,
            "device_count": jax.device_count(), "jax": jax.__version__,
            "jaxlib": importlib.metadata.version("jaxlib"), "python": sys.version.split()[0],
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "vendor_peak_tflops": vendor_peak_tflops(jax.devices()[0].device_kind)}
    if FLAGS.torch or FLAGS.torch_compile:
        import torch

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    return info


def _batch(row: dict) -> str:
    """The batch size, and the steps a call when the loop runs several."""
    calls = row.get("steps_per_call", 1)
    return f"{row['batch_size']}" + (f" ({calls} steps a call)" if calls > 1 else "")


def _rate(measured: dict | None) -> str:
    return "–" if not measured else f"{measured['examples_per_sec']:,.0f}"


def _spread(measured: dict) -> str:
    return f"{measured['examples_per_sec']:,.0f} [{measured['min']:,.0f}, {measured['max']:,.0f}]"


def _ratio(ours: dict, theirs: dict | None) -> str:
    return "–" if not theirs else f"{ours['examples_per_sec'] / theirs['examples_per_sec']:.2f}×"


def markdown(report: dict) -> str:
    m, peak = report["machine"], report["matmul_peak"]
    torch_note = f", torch {m['torch']} ({m['torch_threads']} threads)" if "torch" in m else ""
    lines = [f"{m['cpu']} ({m['cores']} cores), {m['device']} x{m['device_count']}, "
             f"jax {m['jax']}{torch_note}; XLA_FLAGS: `{m.get('xla_flags') or '(none)'}`", "",
             f"Matmul peak (float32 {peak['size']}², jitted): {peak['gflops']:.1f} GFLOP/s "
             f"[{peak['min']:.1f}, {peak['max']:.1f}]"
             + (f"; PyTorch: {peak['torch_gflops']:.1f} GFLOP/s" if "torch_gflops" in peak else ""), ""]
    if m.get("vendor_peak_tflops"):
        lines += [f"Vendor peak (dense bfloat16): {m['vendor_peak_tflops']:.0f} TFLOP/s a chip; MFU: "
                  + ", ".join(f"{r['config']} {100 * r['step']['mfu']:.1f}%" for r in report["results"]), ""]
    if report.get("startup"):
        s = report["startup"]
        lines += [f"Start-up: `experiments.train --help` {s['help_s']:.2f} s; launch to first finished "
                  f"train step ({s['config']}, until metrics.jsonl has it) "
                  f"{s['launch_to_first_step_s']:.2f} s (to exit: {s['launch_to_exit_s']:.2f} s)", ""]
    lines += ["| config | batch | compile s | step examples/s (median [min, max]) | MFLOP/example | GFLOP/s "
              "| % of peak | PyTorch eager | ours / PyTorch | torch.compile | ours / compiled |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["results"]:
        step, compiled = r["step"], r.get("torch_compile")
        compile_note = f" (compile {compiled['first_step_s']:.0f} s)" if compiled else ""
        lines.append(
            f"| {r['config']} | {_batch(r)} | {r['compile_s']:.2f} | {step['examples_per_sec']:,.0f} "
            f"[{step['min']:,.0f}, {step['max']:,.0f}] | {r['flops_per_example'] / 1e6:,.1f} "
            f"| {step['gflops']:.1f} | {100 * step['gflops'] / peak['gflops']:.0f}% "
            f"| {_rate(r.get('torch'))} | {_ratio(step, r.get('torch'))} "
            f"| {_rate(compiled)}{compile_note} | {_ratio(step, compiled)} |")
    lines += ["", "| config | input pipeline examples/s | step examples/s (before and after the loop) "
              "| end-to-end examples/s "
              "| loop overhead | loop w/o eval+checkpoint (manifest) | end-to-end span |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["results"]:
        e2e = r.get("e2e")
        lines.append(
            f"| {r['config']} | {_rate(r.get('pipeline'))} "
            f"| {e2e['step_examples_per_sec_around'] if e2e else r['step']['examples_per_sec']:,.0f} "
            f"| {_rate(e2e)} "
            + (f"| {100 * e2e['loop_overhead']:.1f}% | {e2e['loop_examples_per_sec_manifest']:,.0f} "
               f"| steps {e2e['span'][0]}–{e2e['span'][1]}, {e2e['evaluations_in_span']} eval, "
               f"{e2e.get('compile_s_in_span', 0):.1f} s compiling left out |"
               if e2e else "| – | – | – |"))
    streamed_rows = [r for r in report["results"] if "pipeline_streamed" in r]
    if streamed_rows:
        workers = list(streamed_rows[0]["pipeline_streamed"])
        lines += ["", "Input pipeline alone, the split in memory and streamed from its prepared files "
                  "(examples/s, the median window [min, max]), beside the train step it feeds", "",
                  "| config | train step | in memory | "
                  + " | ".join(f"streamed, {w} workers" for w in workers) + " |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in workers) + " |"]
        for r in streamed_rows:
            cells = [_rate(r["step"]), _rate(r.get("pipeline"))] + [_spread(r["pipeline_streamed"][w])
                                                                      for w in workers]
            lines.append(f"| {r['config']} | " + " | ".join(cells) + " |")
    lm_rows = [r for r in report["results"] if "lm" in r]
    if lm_rows:
        peak_name = "the chip's dense bfloat16 peak" if m.get("vendor_peak_tflops") else "the matmul peak"
        lines += ["", f"Language models: tokens/s and MFU (model FLOPs: 6 x non-embedding parameters + "
                  f"attention, a token; against {peak_name})", "",
                  "| config | parameters | batch x tokens | MFLOP/token | ours tokens/s | MFU "
                  "| PyTorch eager | MFU | ours / PyTorch | torch.compile | MFU | ours / compiled |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in lm_rows:
            lm, cells = r["lm"], []
            for name in ("step", "torch", "torch_compile"):
                measured = lm.get(name, {"tokens_per_sec": math.nan, "mfu": math.nan})
                cells += [f"{measured['tokens_per_sec']:,.0f}", f"{100 * measured['mfu']:.1f}%"]
                if name != "step":
                    cells.append(_ratio(r["step"], r.get(name)))
            lines.append(f"| {r['config']} | {lm['parameters']:,} | {r['batch_size']} x "
                         f"{lm['tokens_per_example']} | {lm['model_flops_per_token'] / 1e6:,.1f} | "
                         + " | ".join(cells) + " |")
    for r in report["results"]:
        if "profile" in r:
            p = r["profile"]
            lines += ["", f"{r['config']}: step {p['step_ms']:.1f} ms, ops {p['op_ms_per_step']:.1f} ms "
                      f"a step (summed over threads, {p['steps']} traced steps)", "",
                      "| op | ms/step | share | from | shape |", "| --- | --- | --- | --- | --- |"]
            lines += [f"| {o['op']} | {o['ms_per_step']:.2f} | {100 * o['share']:.0f}% | {o['what']} "
                      f"| {o['shape']} |" for o in p["top_ops"]]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    platform.apply(cache=False)  # Compile times are measured, so nothing comes from a cache.
    absl_logging.set_verbosity(absl_logging.WARNING)  # Orbax logs every file it writes.
    report = {"machine": machine(), "argv": sys.argv, "matmul_peak": matmul_peak()}
    report["results"] = [bench(spec) for spec in FLAGS.config]
    for r in report["results"]:
        r["step"]["peak_fraction"] = r["step"]["gflops"] / report["matmul_peak"]["gflops"]
        vendor_tflops = report["machine"]["vendor_peak_tflops"]
        if vendor_tflops:  # Per chip: the step's FLOP/s over its devices.
            r["step"]["mfu"] = r["step"]["gflops"] / 1e3 / r["devices"] / vendor_tflops
        if "lm" in r:  # Model FLOPs (6N + attention) a token, per device, over the peak.
            peak_gflops = 1e3 * vendor_tflops if vendor_tflops else report["matmul_peak"]["gflops"]
            for name in ("step", "torch", "torch_compile"):
                if name in r:
                    tokens_per_sec = r[name]["examples_per_sec"] * r["lm"]["tokens_per_example"]
                    r["lm"][name] = {"tokens_per_sec": tokens_per_sec, "mfu": tokens_per_sec
                                     * r["lm"]["model_flops_per_token"] / 1e9 / r["devices"] / peak_gflops}
    report["startup"] = startup(FLAGS.startup_config) if FLAGS.startup_config else None
    table = markdown(report)
    print("\n" + table)
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(report, f, indent=2)
    if FLAGS.md_out:
        with open(FLAGS.md_out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    app.run(main)
