"""PNG figures of a run: learning curves, confusion matrices and a 2-D classifier's predictions.

Figures are made as `matplotlib.figure.Figure` objects, not through pyplot: no global figure
state (a plot may be drawn from any thread), no backend to choose, and a run that ends does not
pay for importing pyplot."""

import os

import numpy as np
from matplotlib.figure import Figure


def learning_curves(rows: list[dict], path: str, title: str = "") -> None:
    """Loss and accuracy against step, train and every eval split found in `rows`."""
    fig = Figure(figsize=(11, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for name in sorted({k for row in rows for k in row}):
        if not name.endswith(("/loss", "/accuracy")):
            continue
        points = [(row["step"], row[name]) for row in rows if name in row]
        ax = ax_loss if name.endswith("/loss") else ax_acc
        ax.plot(*zip(*points, strict=True), label=name, marker="o" if name.startswith("eval/") else None,
                markersize=3)
    for ax, label in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_loss.set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def predictions_2d(points_Nx2: np.ndarray, labels_N: np.ndarray, probability, path: str,
                   class_names=("0", "1"), title: str = "") -> None:
    """A binary classifier over the plane: the predicted probability of class 1 as a colour
    field with its 0.5 contour (the decision boundary), and the points coloured by label.
    `probability(grid_Mx2)` gives the model's probabilities at M points."""
    low, high = points_Nx2.min(axis=0), points_Nx2.max(axis=0)
    margin = 0.1 * (high - low)
    xs = np.linspace(low[0] - margin[0], high[0] + margin[0], 200)
    ys = np.linspace(low[1] - margin[1], high[1] + margin[1], 200)
    grid_x, grid_y = np.meshgrid(xs, ys)
    field = np.asarray(probability(np.stack([grid_x.ravel(), grid_y.ravel()], -1))).reshape(grid_x.shape)
    fig = Figure(figsize=(6.5, 5))
    ax = fig.subplots()
    shading = ax.contourf(grid_x, grid_y, field, levels=np.linspace(0, 1, 21), cmap="RdBu_r", alpha=0.8)
    ax.contour(grid_x, grid_y, field, levels=[0.5], colors="black", linewidths=1.5)
    for label, marker in ((0, "o"), (1, "^")):
        where = labels_N == label
        ax.scatter(points_Nx2[where, 0], points_Nx2[where, 1], c="darkred" if label else "navy",
                   marker=marker, s=14, edgecolors="white", linewidths=0.4, label=class_names[label])
    fig.colorbar(shading, ax=ax, label=f"P({class_names[1]})")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "predicted probability; black line: P = 0.5")
    fig.tight_layout()
    _save(fig, path)


def confusion_matrix(confusion: np.ndarray, class_names: list[str], path: str, title: str = "") -> None:
    confusion = np.asarray(confusion)
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = confusion.max() / 2
    for (i, j), count in np.ndenumerate(confusion):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > threshold else "black")
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)


def sweep_curves(curves: dict[str, list[dict]], metric: str, path: str) -> None:
    """Train loss and `metric` against step, a line per run."""
    fig = Figure(figsize=(12, 4.5))
    ax_loss, ax_metric = fig.subplots(1, 2)
    for name, rows in curves.items():
        for ax, key in ((ax_loss, "train/loss"), (ax_metric, metric)):
            points = [(row["step"], row[key]) for row in rows if key in row]
            if points:
                ax.plot(*zip(*points, strict=True), label=name, linewidth=1)
    for ax, label in ((ax_loss, "train/loss"), (ax_metric, metric)):
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_loss.set_yscale("log")
    if ax_metric.get_legend_handles_labels()[0]:
        ax_metric.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    _save(fig, path)


LOG_SCALE_KEYS = ("lr", "weight_decay", "eps", "clip_norm", "end_lr_factor")


def metric_against(points: list[tuple], key: str, metric: str, path: str) -> None:
    """Final `metric` of each run against hyperparameter `key`, with the mean per value."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x, _ in points)
    values = sorted({x for x, _ in points}, key=lambda v: v if numeric else str(v))
    position = (lambda x: x) if numeric else (lambda x: values.index(x))
    ax.scatter([position(x) for x, _ in points], [y for _, y in points], alpha=0.6, label="runs")
    means = [np.mean([y for x, y in points if x == v]) for v in values]
    ax.plot([position(v) for v in values], means, marker="o", color="black", label="mean")
    scale_free = key.rsplit(".", 1)[-1] in LOG_SCALE_KEYS  # Swept by factors, not steps.
    if numeric and min(values) > 0 and (scale_free or max(values) / min(values) >= 10):
        ax.set_xscale("log")
        ax.minorticks_off()  # Ticks at the swept values only: log-axis minor labels overlap.
        ax.set_xticks(values, [f"{v:g}" for v in values], rotation=45 if len(values) > 5 else 0)
    if not numeric:
        ax.set_xticks(range(len(values)), [str(v) for v in values])
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)
