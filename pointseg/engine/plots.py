"""Training curves as PNG (matplotlib, Agg backend: no display needed).

`history` rows are the dicts the trainer logs once per epoch (see `pointseg.engine.train.LOG_COLUMNS`):
`epoch`, `train_loss`, `train_acc`, `val_loss`, `val_oa`, `val_macc`, `val_miou`, … Missing or NaN
values are skipped, so a run without validation still plots its training curves.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

from pointseg.io import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _series(rows: Sequence[Mapping], key: str, x_key: str = "epoch") -> tuple[list, list]:
    xs, ys = [], []
    for row in rows:
        value = row.get(key)
        if value is None or value == "":
            continue
        value = float(value)
        if math.isfinite(value):
            xs.append(float(row[x_key]))
            ys.append(value)
    return xs, ys


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> None:
    """Write a matplotlib figure to `path` atomically and close it."""
    plt = _pyplot()
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def plot_history(
    history: Sequence[Mapping],
    path: str | os.PathLike,
    *,
    title: str = "",
    steps: Sequence[Sequence[float]] | None = None,
) -> None:
    """Two panels: losses (train per step if `steps` given, train/val per epoch) and metrics.

    `steps` rows are `(step, epoch_float, lr, loss)` as stored by the trainer; they are drawn faintly
    against fractional epochs so per-step noise and per-epoch means share one axis.
    """
    plt = _pyplot()
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    if steps:
        ax_loss.plot(
            [s[1] for s in steps],
            [s[3] for s in steps],
            color="C0",
            alpha=0.25,
            lw=0.8,
            label="train loss (step)",
        )
    for key, colour, label in (("train_loss", "C0", "train loss"), ("val_loss", "C1", "val loss")):
        xs, ys = _series(history, key)
        if xs:
            ax_loss.plot(xs, ys, "o-", color=colour, ms=3, label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_title("loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    for key, colour, label in (
        ("train_acc", "C0", "train acc"),
        ("val_oa", "C1", "val OA"),
        ("val_macc", "C2", "val mAcc"),
        ("val_miou", "C3", "val mIoU"),
        ("val_metric", "C4", "val metric"),  # graph tasks: the task's metric
    ):
        xs, ys = _series(history, key)
        if xs:
            ax_metric.plot(xs, ys, "o-", color=colour, ms=3, label=label)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylim(bottom=0.0)  # top autoscaled: small values stay readable
    ax_metric.set_title("metrics")
    ax_metric.grid(alpha=0.3)
    if ax_metric.get_legend_handles_labels()[0]:
        ax_metric.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def plot_loss_comparison(
    runs: Mapping[str, Sequence[Mapping]],
    path: str | os.PathLike,
    *,
    steps: Mapping[str, Sequence[Sequence[float]]] | None = None,
    metric: str = "val_miou",
    metric_label: str = "val mIoU",
    title: str = "",
    val_loss: bool = True,
) -> None:
    """Several runs on shared axes: training loss (left) and one validation metric (right).

    `runs` maps a run label (e.g. "PlainGCN-14") to its per-epoch history rows; `steps` optionally maps
    the same labels to per-step rows `(step, epoch_float, lr, loss)`. `val_loss=False` leaves the
    validation loss out of the left panel (an outlier epoch would otherwise set its scale).
    """
    plt = _pyplot()
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (label, rows) in enumerate(runs.items()):
        colour = f"C{i}"
        if steps and steps.get(label):
            st = steps[label]
            ax_loss.plot([s[1] for s in st], [s[3] for s in st], color=colour, alpha=0.25, lw=0.8)
        xs, ys = _series(rows, "train_loss")
        ax_loss.plot(xs, ys, "o-", color=colour, ms=3, label=f"{label} train")
        xs, ys = _series(rows, "val_loss") if val_loss else ([], [])
        if xs:
            ax_loss.plot(xs, ys, "s--", color=colour, ms=3, label=f"{label} val")
        xs, ys = _series(rows, metric)
        if xs:
            ax_metric.plot(xs, ys, "o-", color=colour, ms=3, label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_title("training loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylim(bottom=0.0)  # top autoscaled: small values stay readable
    ax_metric.set_title(metric_label)
    ax_metric.grid(alpha=0.3)
    ax_metric.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
