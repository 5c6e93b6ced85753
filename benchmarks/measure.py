"""One --config's row of the report: the train step alone (compile time, examples/s, FLOPs),
its PyTorch twins timed in windows alternating with it, the input pipeline alone (in memory,
and streamed from disk), the op profile, and the loop end to end with its overhead; then the
figures that need the whole run's peaks (share of the matmul peak, MFU, tokens/s)."""

import copy
import statistics
import sys
import time
from collections.abc import Sequence

import jax

from benchmarks import cases, end_to_end, op_profile
from benchmarks.timing import JaxSteps, PipelineBatches, Windows, timed_windows, total_flops


def streamed_pipeline(config, batch_size: int, workers: Sequence[int], windows: Windows) -> dict[str, dict]:
    """The input pipeline alone with the training split streamed from its prepared files
    (data.in_memory=false), for each number of Grain worker processes in `workers`."""
    from research.run import experiment

    config = copy.deepcopy(config)
    config.data.in_memory = "false"
    streamed = experiment.build(config)  # Text: writes the token files on first use.
    rates = {}
    for count in workers:
        runner = PipelineBatches(streamed, batch_size, workers=count)
        rates[str(count)] = timed_windows({"streamed": runner}, batch_size, windows)["streamed"]
        runner.iterator.close()
    return rates


def torch_runners(spec: str, config, exp, host_batch, compile_too: bool) -> dict:
    """The PyTorch twin's train steps, eager and (with `compile_too`) under torch.compile; none
    for a model that has no twin."""
    from benchmarks import torch_twins

    torch_twins.use_all_cores()
    num_classes = exp.train_data.num_classes
    vocab_size = getattr(exp.model, "vocab_size", None)
    variants = {"torch": False, "torch_compile": True} if compile_too else {"torch": False}
    runners = {}
    for name, compile_model in variants.items():
        try:
            twin = torch_twins.build(config.model, host_batch, num_classes, vocab_size)
            runners[name] = torch_twins.TrainSteps(twin, config.opt, host_batch, compile=compile_model)
        except ValueError as e:  # No twin for this model: our columns only.
            print(f"{spec}: {e}", file=sys.stderr)
    return runners


def config_row(spec: str, windows: Windows, *, torch: bool = False, torch_compile: bool = False,
               pipeline: bool = True, streamed_workers: Sequence[int] = (), profile_steps: int = 0,
               profile_top: int = 12, e2e_steps: int = 0) -> dict:
    """Everything measured for `spec`; `e2e_steps=-1` skips the end-to-end run."""
    from research.data import pipeline as input_pipeline
    from research.parallel import sharding
    from research.train import plan
    from research.train import state as state_lib
    from research.train import steps as steps_lib

    config, exp, has_real_data = cases.build_case(spec)
    batch_size = config.data.batch_size
    state = state_lib.initial_state(exp, config.seed)
    steps = steps_lib.jit_steps(exp, config.seed, state, config.train.steps_per_call)
    host_batch = next(input_pipeline.train_batches(exp.train_data.arrays, batch_size=batch_size, seed=0))
    batch = sharding.put_batch(host_batch, exp.mesh)
    start = time.perf_counter()
    compiled = steps.train.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    # The loop's calls: several steps each when the config asks for it (FLOPs still come from
    # the single step: XLA's cost analysis does not count the iterations of a loop).
    steps_per_call = config.train.steps_per_call
    if steps_per_call > 1:
        batches = sharding.put_batch(input_pipeline.stack([host_batch] * steps_per_call), exp.mesh,
                                     leading_axes=1)
        multi = steps.multi.lower(state, batches).compile()
        ours = JaxSteps(multi, state, batches, steps_per_call)
    else:
        ours = JaxSteps(compiled, state, batch, 1)
    runners = {"ours": ours}
    if torch or torch_compile:
        runners.update(torch_runners(spec, config, exp, host_batch, compile_too=torch_compile))
    timings = timed_windows(runners, batch_size, windows)
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
    if pipeline:
        row["pipeline"] = timed_windows({"pipeline": PipelineBatches(exp, batch_size)},
                                        batch_size, windows)["pipeline"]
    if pipeline and streamed_workers and has_real_data:
        row["pipeline_streamed"] = streamed_pipeline(config, batch_size, streamed_workers, windows)
    if profile_steps:
        row["profile"] = op_profile.op_profile(ours.compiled, ours, profile_steps, profile_top)
    if has_real_data and e2e_steps >= 0:
        row["e2e"] = end_to_end.end_to_end(config, exp.steps_per_epoch, e2e_steps)
        # This machine's speed drifts by 10% over minutes: the overhead compares the loop with
        # the step's windows taken just before and just after it.
        after = timed_windows({"ours": ours}, batch_size, windows)["ours"]
        around = statistics.median(row["step"]["windows"] + after["windows"])
        row["e2e"].update(step_examples_per_sec_around=around,
                          loop_overhead=1 - row["e2e"]["examples_per_sec"] / around)
    return row


def add_peak_figures(row: dict, matmul_gflops: float, vendor_tflops: float | None) -> None:
    """The step's share of the matmul peak; on a known accelerator its MFU against the chip's
    peak; for a language model, tokens/s and MFU from model FLOPs, for ours and the twins."""
    row["step"]["peak_fraction"] = row["step"]["gflops"] / matmul_gflops
    if vendor_tflops:  # Per chip: the step's FLOP/s over its devices.
        row["step"]["mfu"] = row["step"]["gflops"] / 1e3 / row["devices"] / vendor_tflops
    if "lm" in row:  # Model FLOPs (6N + attention) a token, per device, over the peak.
        peak_gflops = 1e3 * vendor_tflops if vendor_tflops else matmul_gflops
        for name in ("step", "torch", "torch_compile"):
            if name in row:
                tokens_per_sec = row[name]["examples_per_sec"] * row["lm"]["tokens_per_example"]
                row["lm"][name] = {"tokens_per_sec": tokens_per_sec, "mfu": tokens_per_sec
                                   * row["lm"]["model_flops_per_token"] / 1e9 / row["devices"] / peak_gflops}
