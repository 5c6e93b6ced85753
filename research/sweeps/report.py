"""A sweep's summary: results.csv (a row per run), results.md (mean ± std over seeds per
setting, best marked) and plots (learning curves; final metric against each hyperparameter)."""

import csv
import json
import math
import os

import numpy as np
from absl import logging

from research import plots
from research.train import metric_writer

SEED_KEY = "seed"


def _read_json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def collect(runs, status: dict) -> list[dict]:
    """One row per run: its overrides, status, final scalar metrics and `train_loop_s`, the
    seconds its training loop ran (restore to last save, summed over sessions; runs trained
    vectorized each show their group's loop). The process's own time is status.json's
    `process_s`."""
    rows = []
    for run in runs:
        results = _read_json(os.path.join(run.workdir, "results.json")) or {}
        manifest = _read_json(os.path.join(run.workdir, "manifest.json")) or {"sessions": []}
        loop_s = sum(s.get("wall_time_s") or 0 for s in manifest["sessions"])
        state = "finished" if results else status.get(run.name, {}).get("status", "pending")
        rows.append({"run": run.name, **run.overrides, "status": state,
                     **{k: v for k, v in results.items() if isinstance(v, (int, float))},
                     "train_loop_s": round(loop_s, 2)})
    return rows


def write_csv(rows: list[dict], path: str) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan


def group_by_setting(rows: list[dict], swept: list[str]) -> dict[tuple, list[dict]]:
    """Finished runs grouped by every swept key but the seed."""
    keys = [k for k in swept if k != SEED_KEY]
    groups = {}
    for row in rows:
        if row["status"] == "finished":
            groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    return groups


def write_markdown(rows: list[dict], swept: list[str], metrics: list[str], best_metric: str,
                   best_mode: str, path: str, title: str) -> None:
    keys = [k for k in swept if k != SEED_KEY]
    groups = group_by_setting(rows, swept)
    means = {setting: {m: _mean_std([r[m] for r in group if m in r]) for m in metrics}
             for setting, group in groups.items()}
    pick = max if best_mode == "max" else min
    best = None
    if means and best_metric in metrics:
        best = pick(means, key=lambda s: means[s][best_metric][0])
    lines = [f"# {title}", "",
             "Mean ± sample std over seeds; n = finished runs. "
             f"**Bold**: best by {best_metric} ({best_mode}).", "",
             "| " + " | ".join([*keys, *metrics, "n"]) + " |",
             "|" + " --- |" * (len(keys) + len(metrics) + 1)]
    for setting in sorted(groups, key=lambda s: tuple(str(v) for v in s)):
        cells = [str(v) for v in setting]
        for m in metrics:
            mean, std = means[setting][m]
            cells.append(f"{mean:.4f} ± {std:.4f}" if not math.isnan(std) else f"{mean:.4f}")
        cells.append(str(len(groups[setting])))
        if setting == best:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    states = dict.fromkeys(r["status"] for r in rows)
    counts = {state: sum(r["status"] == state for r in rows) for state in states}
    lines += ["", "Runs: " + ", ".join(f"{n} {state}" for state, n in counts.items()) + "."]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_plots(runs, rows: list[dict], swept: list[str], metric: str, plot_dir: str) -> None:
    curves = {run.name: metric_writer.read_metrics(run.workdir) for run in runs}
    curves = {name: rows for name, rows in curves.items() if rows}
    if not curves:  # No run logged a step: nothing to draw.
        logging.warning("no run of the sweep logged a metric: no plots written")
        return
    plots.sweep_curves(curves, metric, os.path.join(plot_dir, "learning_curves.png"))
    for key in swept:
        if key == SEED_KEY:
            continue
        points = [(row[key], row[metric]) for row in rows if row["status"] == "finished" and metric in row]
        if points:
            name = f"{metric.replace('/', '_')}_vs_{key}.png"
            plots.metric_against(points, key, metric, os.path.join(plot_dir, name))


def summarize(runs, status: dict, sweep_dir: str, *, best_metric: str, best_mode: str,
              title: str) -> list[dict]:
    rows = collect(runs, status)
    swept = list(dict.fromkeys(key for run in runs for key in run.overrides))
    metrics = sorted({k for row in rows for k in row if k.startswith("eval/")})
    write_csv(rows, os.path.join(sweep_dir, "results.csv"))
    write_markdown(rows, swept, metrics, best_metric, best_mode,
                   os.path.join(sweep_dir, "results.md"), title)
    write_plots(runs, rows, swept, best_metric, os.path.join(sweep_dir, "plots"))
    return rows
