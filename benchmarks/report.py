"""The report as markdown tables: the machine and its peaks, then one row a config for the train
step beside PyTorch, the pipeline and the loop end to end, streamed input, language models'
tokens/s and MFU, and each profile's most expensive ops. docs/bench/ keeps these tables, and
docs/performance.md compares against them, so their format is kept."""

import math


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

