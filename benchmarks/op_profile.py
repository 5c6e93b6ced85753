"""The compiled train step's most expensive XLA ops: a jax.profiler trace of some steps, its
events matched to the optimized HLO's instructions and named by the JAX op each came from."""

import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

import jax


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


def op_profile(compiled, run, steps: int, top: int) -> dict:
    """Time per step of the compiled step's ops (the `top` most expensive), from a jax.profiler
    trace of `run(steps)`, which runs that step. Ops on different threads can overlap, so their
    sum may exceed the step's wall time."""
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
    top_ops = [{"op": name, "ms_per_step": us / 1000 / steps, "share": us / total,
                "what": ops[name]["what"], "shape": ops[name]["shape"]}
               for name, us in micros.most_common(top)]
    return {"steps": steps, "step_ms": 1000 * wall_s / steps, "op_ms_per_step": total / 1000 / steps,
            "top_ops": top_ops}
