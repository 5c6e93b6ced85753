"""Reruns published result tables: each row is a seeds sweep of a config, run through
experiments.sweep (so a killed run resumes), summarised next to the published number.

  .venv/bin/python scripts/reproduce_tables.py --table=mnist1d
  .venv/bin/python scripts/reproduce_tables.py --table=fashion_mnist --rows=mlp,cnn,cnn_bn,resnet_cpu
  .venv/bin/python scripts/reproduce_tables.py --table=bbc_news
  .venv/bin/python scripts/reproduce_tables.py --table=mnist1d --summarize_only
  .venv/bin/python scripts/reproduce_tables.py --table=compression [--remeasure]

Writes <runs_dir>/<table>.md (and .json): per row the published figure, ours as mean ± sample
std over seeds, the seeds, the row's wall time (every sweep command it took, summed) and the
hardware it ran on. Rows marked "accelerator" run only when named in --rows. The compression
table adds, for each row's seed-0 model, its exported bytes and latency (--remeasure times them
again without training, e.g. once the machine is idle).
"""

import dataclasses
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
import zlib

import numpy as np
from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string("table", None, "Which table: mnist1d, fashion_mnist, bbc_news or compression.")
flags.DEFINE_list("rows", [], "Rows to run (default: every row not marked accelerator).")
flags.DEFINE_string("runs_dir", "runs/tables", "Where the sweeps and the tables are written.")
flags.DEFINE_bool("summarize_only", False, "Write the table from what has run; start nothing.")
flags.DEFINE_bool("remeasure", False, "Compression table: export and time the rows' models again "
                  "(e.g. on an otherwise idle machine) without retraining anything.")
flags.DEFINE_integer("parallel", 1, "Runs at a time within a row (experiments.sweep --parallel).")
flags.mark_flag_as_required("table")


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    label: str
    config: str
    published: str
    sweep: str = "seeds"
    vectorize: bool = False
    accelerator: bool = False
    metric: str = "accuracy"  # Read from eval/test/<metric>.
    init_from_row: str = ""  # Starts every run from seed 0 of that row's sweep.
    # A script run instead of a sweep (one deterministic run into seed=0/), for baselines.
    program: str = ""
    args: tuple = ()  # More flags for the sweep or the program.
    teacher_row: str = ""  # Distils every run from seed 0 of that row's sweep.
    shrink_row: str = ""  # Narrows seed 0 of that row's sweep (structured pruning) for every run.
    # Compression rows: post-training int8 quantization (this mode) of every run of `of_row`
    # instead of a sweep; and the flags experiments.export gets for the row's seed-0 run.
    quantize: str = ""
    of_row: str = ""
    export_args: tuple = ()
    serve: bool = False  # Serve the row's seed-0 export and load-test it (SERVE_LOAD).


SMALL_LM = ("--config.model.hidden=64", "--config.model.depth=1", "--config.model.heads=2",
            "--config.model.mlp_dim=256")
FLOAT_EXPORT = ("--format=onnx,stablehlo",)
# StableHLO: Qwix's int8 model; ONNX: onnxruntime's int8 quantization of the float ONNX model.
INT8_EXPORT = ("--format=onnx,stablehlo", "--quantized=w8a8")
INT8_STATIC_EXPORT = ("--format=onnx,stablehlo", "--quantized=w8a8_static")
# A QAT run's model holds Qwix's fake quantization, which jax2onnx cannot trace: StableHLO only.
QAT_EXPORT = ("--format=stablehlo", "--quantized=w8a8")

TABLES = {
    "mnist1d": ("MNIST-1D test accuracy (Greydanus 2020, github.com/greydanus/mnist1d README)", [
        Row("logreg", "Logistic regression", "configs/mnist1d.py:model=logreg", "32%", vectorize=True),
        Row("mlp", "MLP", "configs/mnist1d.py:model=mlp", "68%", vectorize=True),
        Row("cnn", "CNN", "configs/mnist1d.py:model=cnn", "94%", vectorize=True),
        Row("gru", "GRU", "configs/mnist1d.py:model=gru", "91%", vectorize=True),
    ]),
    "fashion_mnist": ("Fashion-MNIST test accuracy (zalandoresearch/fashion-mnist benchmark table)", [
        Row("mlp", "MLP 256-128-100", "configs/fashion_mnist_benchmark.py:row=mlp", "0.8833",
            vectorize=True),
        Row("cnn", "2 Conv+pooling", "configs/fashion_mnist_benchmark.py:row=cnn", "0.876"),
        Row("cnn_bn", "2 Conv+pooling+BN", "configs/fashion_mnist_benchmark.py:row=cnn_bn", "0.934"),
        Row("resnet_cpu", "ResNet, 3 stages x 1 block, widths 8-16-32 (CPU-sized)",
            "configs/fashion_mnist_benchmark.py:row=resnet_cpu", "-"),
        Row("resnet18", "ResNet18", "configs/fashion_mnist_benchmark.py:row=resnet18", "0.949",
            accelerator=True),
    ]),
    "compression": ("Fashion-MNIST compression: distillation, pruning, int8 quantization "
                    "(configs/compression.py)", [
        Row("teacher", "Teacher: BN CNN conv32-conv64-dense128, 5 epochs",
            "configs/compression.py:row=teacher", "-", export_args=FLOAT_EXPORT, serve=True),
        Row("student", "Student CNN conv8-conv16-dense32 from scratch, 10 epochs",
            "configs/compression.py:row=student", "-", export_args=FLOAT_EXPORT),
        Row("distilled", "Student distilled from the teacher (T=4, alpha=0.9), 10 epochs",
            "configs/compression.py:row=distilled", "-", teacher_row="teacher", export_args=FLOAT_EXPORT),
        Row("distilled_t2", "Student distilled from the teacher (T=2, alpha=0.5), 10 epochs",
            "configs/compression.py:row=distilled,temperature=2,alpha=0.5", "-", teacher_row="teacher"),
        Row("student_fm", "Student from scratch on function-matching views (crop, flip, mixup; the two "
            "labels weighed by the mix), 20 epochs", "configs/compression.py:row=student,fm=mixup,epochs=20",
            "-", export_args=FLOAT_EXPORT),
        Row("distilled_fm", "Student distilled by function matching (the teacher's outputs on the same "
            "mixup views its only target; T=1), 20 epochs", "configs/compression.py:row=distilled,fm=mixup,"
            "epochs=20", "-", teacher_row="teacher", export_args=FLOAT_EXPORT),
        Row("student_wide", "Wider student CNN conv16-conv32-dense64 from scratch, 10 epochs",
            "configs/compression.py:row=student,wide=True", "-", export_args=FLOAT_EXPORT),
        Row("distilled_wide", "Wider student distilled from the teacher (T=4, alpha=0.9), 10 epochs",
            "configs/compression.py:row=distilled,wide=True", "-", teacher_row="teacher"),
        *(Row(f"pruned{p}", f"Teacher pruned to {p}% of its kernels (2 epochs of fine-tuning)",
              f"configs/compression.py:row=pruned,sparsity=0.{p}", "-", init_from_row="teacher",
              export_args=FLOAT_EXPORT) for p in (50, 75, 90)),
        Row("pruned90_global", "Teacher pruned to 90% of its kernels, one threshold for all (global "
            "scope)", "configs/compression.py:row=pruned,sparsity=0.90,scope=global", "-",
            init_from_row="teacher", export_args=FLOAT_EXPORT),
        *(Row(f"shrunk{k}", f"Teacher structurally pruned to {k}% of its channels and units (BatchNorm "
              "scale; dense: L1), fine-tuned 5 epochs", f"configs/compression.py:row=shrunk,keep=0.{k}",
              "-", shrink_row="teacher", export_args=FLOAT_EXPORT, serve=True) for k in (50, 40, 35, 30, 25)),
        *(Row(f"shrunk{k}_scratch", f"The {k}% model from scratch, the same 5-epoch schedule",
              f"configs/compression.py:row=shrunk,keep=0.{k}", "-") for k in (50, 25)),
        Row("shrunk50_ptq_static", "Teacher structurally pruned to 50%, then int8 post-training "
            "quantization (w8a8_static)", "configs/compression.py:row=shrunk,keep=0.50", "-",
            quantize="w8a8_static", of_row="shrunk50", export_args=INT8_STATIC_EXPORT, serve=True),
        Row("shrunk35_ptq_static", "Teacher structurally pruned to 35%, then int8 post-training "
            "quantization (w8a8_static)", "configs/compression.py:row=shrunk,keep=0.35", "-",
            quantize="w8a8_static", of_row="shrunk35", export_args=INT8_STATIC_EXPORT, serve=True),
        Row("ptq", "Teacher, int8 post-training quantization (w8a8: int8 weights, activations "
            "quantized per call)", "configs/compression.py:row=teacher", "-", quantize="w8a8",
            of_row="teacher", export_args=INT8_EXPORT),
        Row("ptq_static", "Teacher, int8 post-training quantization (w8a8_static: activation scales "
            "calibrated on 8 training batches)", "configs/compression.py:row=teacher", "-",
            quantize="w8a8_static", of_row="teacher", export_args=INT8_STATIC_EXPORT),
        Row("qat", "Student with int8 quantization-aware training (Qwix), 10 epochs; exported as int8",
            "configs/compression.py:row=qat", "-", export_args=QAT_EXPORT),
        Row("bbc_lm_teacher", "BBC News LM teacher: 2 blocks, width 128, 5 epochs (test perplexity)",
            "configs/bbc_news.py:model=lm", "-", sweep="pretrain", metric="perplexity"),
        Row("bbc_lm_student", "Smaller BBC News LM: 1 block, width 64, from scratch (test perplexity)",
            "configs/bbc_news.py:model=lm", "-", sweep="pretrain", metric="perplexity", args=SMALL_LM),
        Row("bbc_lm_distilled", "Smaller BBC News LM distilled from the LM teacher per token (T=2, "
            "alpha=0.5)",
            "configs/bbc_news.py:model=lm", "-", sweep="pretrain", metric="perplexity",
            teacher_row="bbc_lm_teacher",
            args=(*SMALL_LM, "--config.distill.temperature=2", "--config.distill.alpha=0.5")),
    ]),
    "bbc_news": ("BBC News (5 classes, our seeded stratified 80/20 split) test accuracy", [
        Row("lm", "Transformer LM pretrained on the training texts (perplexity)",
            "configs/bbc_news.py:model=lm", "-", sweep="pretrain", metric="perplexity"),
        Row("scratch", "Transformer classifier from scratch", "configs/bbc_news.py:model=transformer",
            "98.3% (SVM)"),
        Row("finetuned", "Transformer classifier fine-tuned from the LM",
            "configs/bbc_news.py:model=transformer", "98.3% (SVM)", init_from_row="lm"),
        Row("mlm", "Transformer encoder pretrained as a masked LM on the training texts (MLM perplexity)",
            "configs/bbc_news.py:model=mlm", "-", sweep="pretrain", metric="perplexity"),
        Row("mlm_finetuned", "Bidirectional Transformer classifier fine-tuned from the masked LM",
            "configs/bbc_news.py:model=encoder", "98.3% (SVM)", init_from_row="mlm"),
        Row("tfidf", "TF-IDF word 1-2-grams (sublinear tf) + LinearSVC, whole articles (baseline)",
            "configs/bbc_news.py", "98.3% (SVM)", program="scripts/baseline_tfidf.py"),
        Row("tfidf256", "TF-IDF + LinearSVC as above, on each article's first 256 tokens (what the neural "
            "classifiers read)", "configs/bbc_news.py", "98.3% (SVM)", program="scripts/baseline_tfidf.py",
            args=("--first_tokens=256",)),
    ]),
}


def hardware() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPU cores ({model})"


def sweep_dir(table: str, row: Row) -> str:
    return os.path.join(flags.FLAGS.runs_dir, table, row.name)


def run_row(table: str, row: Row, rows_by_name: dict) -> None:
    """Runs (or resumes) the row's sweep, or quantizes its source row's runs; adds the
    commands' wall time to row.json; then exports the row's first run (`export_args`)."""
    directory = sweep_dir(table, row)
    command = [sys.executable, "-m", "experiments.sweep", f"--config={row.config}",
               f"--sweep={row.sweep}", f"--sweep_dir={directory}",
               f"--parallel={flags.FLAGS.parallel}"]
    if row.program:
        command = [sys.executable, row.program, f"--config={row.config}", f"--workdir={directory}/seed=0"]
    command += list(row.args)
    if row.vectorize:
        command.append("--vectorize")
    if row.init_from_row:
        command.append(f"--config.init_from={sweep_dir(table, rows_by_name[row.init_from_row])}/seed=0")
    if row.teacher_row:
        command.append(f"--config.distill.teacher={sweep_dir(table, rows_by_name[row.teacher_row])}/seed=0")
    if row.shrink_row:
        command.append(f"--config.shrink.source={sweep_dir(table, rows_by_name[row.shrink_row])}/seed=0")
    commands = [command]
    if row.quantize:  # One experiments.quantize a run of the source row (those not done yet).
        source = sweep_dir(table, rows_by_name[row.of_row])
        commands = [[sys.executable, "-m", "experiments.quantize", f"--workdir={source}/{run['run']}",
                     f"--weights_activations={row.quantize}"]
                    for run in _finished_results(source)
                    if not os.path.exists(os.path.join(source, run["run"], "quantized",
                                                       f"{row.quantize}.json"))]
    for command in commands:
        _timed(table, row, directory, command)
    if row.export_args:
        _export(table, row, rows_by_name)
    if row.serve:
        _serve(table, row, rows_by_name)


def _timed(table: str, row: Row, directory: str, command: list[str]) -> None:
    """Runs `command`, adding its wall time to the row's row.json."""
    print(f"[{table}/{row.name}] {' '.join(command[1:])}", flush=True)
    start = time.time()
    result = subprocess.run(command, cwd=ROOT)
    elapsed = time.time() - start
    record_path = os.path.join(directory, "row.json")
    record = _read_json(record_path) or {"wall_time_s": 0.0}
    commands = record.get("commands", [])
    text = " ".join(["python", *command[1:]])
    record.update(wall_time_s=record["wall_time_s"] + elapsed, hardware=hardware(), command=text,
                  commands=commands + [text] * (text not in commands))
    os.makedirs(directory, exist_ok=True)
    with open(record_path, "w") as f:
        json.dump(record, f, indent=1)
    if result.returncode != 0:
        raise SystemExit(f"error: row {row.name} of {table} failed (exit {result.returncode}); "
                         f"see {directory}/logs/ and rerun the same command to resume")


def _exported_run(table: str, row: Row, rows_by_name: dict) -> tuple[str, str]:
    """(the workdir a row's export is made from, its export directory)."""
    workdir = os.path.join(sweep_dir(table, rows_by_name[row.of_row] if row.quantize else row), "seed=0")
    quantized = _quantized(row)
    return workdir, os.path.join(workdir, f"export_{quantized}" if quantized else "export")


def _quantized(row: Row) -> str:
    """The int8 mode of the row's export ("" for float)."""
    return next((a.split("=", 1)[1] for a in row.export_args if a.startswith("--quantized=")), "")


def _export(table: str, row: Row, rows_by_name: dict) -> None:
    """Exports the row's seed-0 run with latencies measured (again with --remeasure)."""
    workdir, directory = _exported_run(table, row, rows_by_name)
    signature = _read_json(os.path.join(directory, "signature.json"))
    if signature is not None and not flags.FLAGS.remeasure:
        return
    command = [sys.executable, "-m", "experiments.export", f"--workdir={workdir}", "--measure_latency",
               "--evaluate", *row.export_args]
    print(f"[{table}/{row.name}] {' '.join(command[1:])}", flush=True)
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        raise SystemExit(f"error: exporting {workdir} failed; see the message above")


# What a served row is measured with: scripts/load_test.py's flags, client and server on the
# same machine (each request one all-zeros image, answered by experiments.serve's batching).
SERVE_LOAD = ("--requests=2000", "--concurrency=32")


def _serve(table: str, row: Row, rows_by_name: dict) -> None:
    """Serves the row's seed-0 export (ONNX; an int8 row: its int8 ONNX export) on loopback and
    writes scripts/load_test.py's figures to served.json beside the export."""
    workdir, directory = _exported_run(table, row, rows_by_name)
    out = os.path.join(directory, "served.json")
    if os.path.exists(out) and not flags.FLAGS.remeasure:
        return
    quantized = _quantized(row)
    with socket.socket() as s:  # A free port on loopback for the server.
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "experiments.serve", f"--workdir={workdir}", "--host=127.0.0.1",
               f"--port={port}", "--backend=onnx", *([f"--quantized={quantized}"] if quantized else [])]
    print(f"[{table}/{row.name}] {' '.join(command[1:])}", flush=True)
    server = subprocess.Popen(command, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError as e:
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"error: the server of {workdir} did not start; see the message "
                                     "above") from e
                time.sleep(0.3)
        load = [sys.executable, "scripts/load_test.py", f"--url={url}", *SERVE_LOAD, f"--json={out}"]
        if subprocess.run(load, cwd=ROOT).returncode != 0:
            raise SystemExit(f"error: load-testing {workdir} failed; see the message above")
    finally:
        server.terminate()
        server.wait(timeout=60)


def _read_json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _finished_results(directory: str) -> list[dict]:
    results = []
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            found = _read_json(os.path.join(directory, name, "results.json"))
            if found is not None:
                results.append({"run": name, **found})
    return results


def _row_results(table: str, row: Row, rows_by_name: dict) -> list[dict]:
    """The row's finished runs' results (for a quantization row: its quantized models')."""
    if not row.quantize:
        return _finished_results(sweep_dir(table, row))
    source = sweep_dir(table, rows_by_name[row.of_row])
    results = []
    for run in _finished_results(source):
        found = _read_json(os.path.join(source, run["run"], "quantized", f"{row.quantize}.json"))
        if found is not None:
            results.append({"run": run["run"], **found["quantized"]})
    return results


def _zlib_bytes(directory: str, file: str) -> int:
    """Bytes of an exported model (with its .data) compressed by zlib at level 9: what pruning's
    zeros save on disk or on the wire (the files store them densely)."""
    data = b"".join(open(os.path.join(directory, name), "rb").read()
                    for name in sorted(os.listdir(directory)) if name.startswith(file))
    return len(zlib.compress(data, 9))


def _compression_cells(table: str, row: Row, rows_by_name: dict) -> tuple[list[str], dict]:
    """The export columns of a compression row (from its seed-0 run's export), and their values."""
    _, directory = _exported_run(table, row, rows_by_name)
    signature = _read_json(os.path.join(directory, "signature.json"))
    if signature is None:
        return ["-"] * 8, {}
    values = {"parameters": signature["parameters"]}
    cells = [f"{signature['parameters']['nonzero']:,} of {signature['parameters']['total']:,}"]
    for name in ("onnx", "stablehlo"):
        written = signature["formats"].get(name)
        if written is None:
            cells += ["-"] * (4 if name == "onnx" else 2)
            continue
        latency = written.get("latency_s", {})
        timing = (f"{latency['1'] * 1e3:.3f} ms / {latency['256'] / 256 * 1e6:.1f} us"
                  if latency else "-")
        size = f"{written['bytes']:,}"
        values[name] = dict(written, directory=directory)
        if name == "onnx":
            compressed = _zlib_bytes(directory, written["file"])
            values[name]["zlib_bytes"] = compressed
            accuracy = written.get("test_accuracy")
            cells += [size, f"{compressed:,}", timing, "-" if accuracy is None else f"{100 * accuracy:.2f}%"]
        else:
            cells += [size, timing]
    served = _read_json(os.path.join(directory, "served.json"))
    if served is not None and "requests_per_s" in served:
        values["served"] = served
        cells.append(f"{served['requests_per_s']:,.0f} / {served['p50_ms']:.1f} ms")
    else:
        cells.append("-")
    return cells, values


def summarize_compression(table: str, title: str, rows: list[Row]) -> str:
    rows_by_name = {row.name: row for row in rows}
    lines = [f"# {title}", "",
             "Test accuracy: mean ± sample std over seeds of the final test-set accuracy (per seed in "
             "brackets; the language models' rows: test perplexity). The other columns are of seed 0's "
             "model, exported by `experiments.export --measure_latency`: parameters non-zero of all; the"
             " exported files' bytes (ONNX with its .data, and zlib -9 of it, where pruning's zeros "
             "pay); the time of one call at batch 1 / per example at batch 256, median, in onnxruntime "
             "(ONNX) and in XLA via jax.export (StableHLO), on this CPU; the ONNX model's own test "
             "accuracy (`--evaluate`). int8 rows: the test accuracy is Qwix's int8 model's, which is "
             "what the StableHLO file holds; the ONNX file is onnxruntime's int8 quantization of the "
             "float ONNX model (the same mode), with its own accuracy. Served: requests/s and median "
             "latency of `experiments.serve --backend=onnx` under `scripts/load_test.py "
             f"{' '.join(SERVE_LOAD)}` (client and server on the same cores). Wall time: the row's training "
             "(or quantization) commands, summed.", "",
             "| Model | Test accuracy | Parameters (non-zero) | ONNX bytes | ONNX zlib bytes | ONNX latency "
             "b1 / b256 per ex. | ONNX test accuracy | StableHLO bytes | XLA latency b1 / b256 per ex. | "
             "Served req/s / p50 | Seeds | Wall time | Config |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    summary = {}
    for row in rows:
        results = _row_results(table, row, rows_by_name)
        record = _read_json(os.path.join(sweep_dir(table, row), "row.json")) or {}
        values = [r[f"eval/test/{row.metric}"] for r in results]
        percent = row.metric == "accuracy"
        ours = _mean_std(values, percent=percent)
        if values:
            ours = ("" if percent else f"{row.metric} ") + ours + " (" + ", ".join(
                f"{100 * v:.2f}" if percent else f"{v:.2f}" for v in values) + ")"
        cells, values = _compression_cells(table, row, rows_by_name)
        wall = record.get("wall_time_s")
        lines.append(f"| {row.label} | {ours} | {' | '.join(cells)} | {len(results)} | "
                     f"{_wall_text(wall)} | `{row.config}` |")
        summary[row.name] = {"label": row.label, "runs": results, "wall_time_s": wall,
                             "hardware": record.get("hardware"), "commands": record.get("commands"),
                             **values}
    lines += ["", f"Hardware: {hardware()}."]
    return _write_summary(table, lines, summary)


def _wall_text(wall) -> str:
    return "-" if wall is None else (f"{wall / 60:.1f} min" if wall >= 60 else f"{wall:.0f} s")


def _write_summary(table: str, lines: list[str], summary: dict) -> str:
    text = "\n".join(lines) + "\n"
    os.makedirs(flags.FLAGS.runs_dir, exist_ok=True)
    with open(os.path.join(flags.FLAGS.runs_dir, f"{table}.md"), "w") as f:
        f.write(text)
    with open(os.path.join(flags.FLAGS.runs_dir, f"{table}.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return text


def _mean_std(values: list[float], percent: bool) -> str:
    if not values:
        return "not run"
    scale = 100.0 if percent else 1.0
    values = np.asarray(values, np.float64) * scale
    digits = 1 if percent else 4
    text = f"{values.mean():.{digits}f}"
    if len(values) > 1:
        text += f" ± {values.std(ddof=1):.{digits}f}"
    return text + ("%" if percent else "")


def summarize(table: str, title: str, rows: list[Row]) -> str:
    lines = [f"# {title}", "",
             "Ours: mean ± sample std over seeds of the final test-set figures. Wall time: the "
             "row's sweep commands, all seeds, summed.", "",
             "| Model | Published | Ours | Macro F1 | Seeds | Wall time | Hardware | Config |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    summary = {}
    for row in rows:
        directory = sweep_dir(table, row)
        results = _finished_results(directory)
        record = _read_json(os.path.join(directory, "row.json")) or {}
        percent = "%" in row.published
        ours = _mean_std([r[f"eval/test/{row.metric}"] for r in results],
                         percent=percent and row.metric == "accuracy")
        if row.metric != "accuracy" and results:
            ours = f"{row.metric} {ours}"
        f1_values = [r["eval/test/f1"] for r in results if "eval/test/f1" in r]
        f1 = _mean_std(f1_values, percent=percent) if f1_values else "-"
        wall = record.get("wall_time_s")
        wall_text = _wall_text(wall)
        note = " (needs an accelerator; not run here)" if row.accelerator and not results else ""
        lines.append(f"| {row.label}{note} | {row.published} | {ours} | {f1} | "
                     f"{len(results)} | {wall_text} | {record.get('hardware', '-')} | `{row.config}` |")
        summary[row.name] = {"label": row.label, "published": row.published, "runs": results,
                             "wall_time_s": wall, "hardware": record.get("hardware"),
                             "command": record.get("command")}
    return _write_summary(table, lines, summary)


def main(argv):
    del argv
    f = flags.FLAGS
    if f.table not in TABLES:
        raise SystemExit(f"error: unknown table {f.table!r}; choose one of {sorted(TABLES)}")
    title, rows = TABLES[f.table]
    rows_by_name = {row.name: row for row in rows}
    unknown = sorted(set(f.rows) - set(rows_by_name))
    if unknown:
        raise SystemExit(f"error: table {f.table} has no rows {unknown}; it has {sorted(rows_by_name)}")
    if f.rows:
        chosen = [row for row in rows if row.name in f.rows]
    else:
        chosen = [row for row in rows if not row.accelerator]
    if f.remeasure:
        for row in chosen:
            if row.export_args:
                _export(f.table, row, rows_by_name)
            if row.serve:
                _serve(f.table, row, rows_by_name)
    elif not f.summarize_only:
        for row in chosen:
            for needed in (row.init_from_row, row.teacher_row, row.shrink_row, row.of_row):
                if needed and not _finished_results(sweep_dir(f.table, rows_by_name[needed])):
                    raise SystemExit(f"error: row {row.name} needs row {needed}: run it first")
            run_row(f.table, row, rows_by_name)
    print((summarize_compression if f.table == "compression" else summarize)(f.table, title, rows))


if __name__ == "__main__":
    app.run(main)
