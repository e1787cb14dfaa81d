"""Result tables, CSV/JSON writers and confusion-matrix heat maps (shared by eval, train, demo).

Every table is keyed by class *name* (some codebases swap S3DIS furniture indices, DESIGN §4) and
every undefined value (a class absent from both target and prediction) is shown as "—" in text and
null in JSON. All files are written atomically through `pointseg.io.atomic_write`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.io import atomic_write, atomic_write_text
from pointseg.metrics import ConfusionMatrix

__all__ = [
    "fmt_pct",
    "format_metrics_table",
    "format_class_table",
    "to_jsonable",
    "write_json",
    "write_per_class_csv",
    "read_per_class_csv",
    "write_confusion_csv",
    "read_confusion_csv",
    "plot_confusion",
    "write_eval_outputs",
]

DASH = "—"


def fmt_pct(x: float | None, digits: int = 2) -> str:
    """0.5211 -> '52.11'; None / NaN -> '—'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    return f"{100.0 * float(x):.{digits}f}"


def _render(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
        ]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    out = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        if r and r[0] == "":  # separator row
            out.append("  ".join("-" * w for w in widths))
            continue
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(out)


def format_metrics_table(
    results: Mapping[str, ConfusionMatrix],
    class_names: Sequence[str],
    *,
    markdown: bool = False,
    digits: int = 2,
) -> str:
    """Per-class IoU (%) side by side, one column per result, then OA / mAcc / mIoU rows.

    `results` maps a column title (e.g. "block-sampled", "whole-room", "ResGCN") to its matrix.
    """
    header = ["class"] + [f"{k} IoU" for k in results]
    rows = []
    ious = {k: cm.iou() for k, cm in results.items()}
    for c, name in enumerate(class_names):
        rows.append([name] + [fmt_pct(ious[k][c], digits) for k in results])
    if not markdown:
        rows.append([""] * len(header))
    for label, fn in (("OA", "oa"), ("mAcc", "macc"), ("mIoU", "miou")):
        cell = label if not markdown else f"**{label}**"
        rows.append([cell] + [fmt_pct(getattr(cm, fn)(), digits) for cm in results.values()])
    return _render(header, rows, markdown)


def format_class_table(
    cm: ConfusionMatrix, class_names: Sequence[str], *, markdown: bool = False, digits: int = 2
) -> str:
    """Detailed table for one matrix: IoU, accuracy, target points and predicted points per class."""
    header = ["class", "IoU %", "Acc %", "points", "predicted"]
    iou, acc, sup, pred = cm.iou(), cm.acc(), cm.support, cm.predicted
    rows = [
        [n, fmt_pct(iou[c], digits), fmt_pct(acc[c], digits), str(int(sup[c])), str(int(pred[c]))]
        for c, n in enumerate(class_names)
    ]
    summary = (
        f"OA {fmt_pct(cm.oa(), digits)}  mAcc {fmt_pct(cm.macc(), digits)}  "
        f"mIoU {fmt_pct(cm.miou(), digits)}  "
        f"(GT classes: {fmt_pct(cm.miou_gt(), digits)} over {int((cm.support > 0).sum())})  "
        f"({cm.total} points)"
    )
    return _render(header, rows, markdown) + "\n" + summary


def to_jsonable(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays, Paths and NaN (-> None) for strict JSON."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, os.PathLike):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write strict JSON (NaN -> null)."""
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")
    return Path(path)


def _write_csv(
    path: str | os.PathLike, header: Sequence[str], rows: Sequence[Sequence[Any]]
) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return Path(path)


PER_CLASS_HEADER = [
    "protocol",
    "class_id",
    "class",
    "iou",
    "acc",
    "intersection",
    "union",
    "support",
    "predicted",
]


def write_per_class_csv(
    path: str | os.PathLike, results: Mapping[str, ConfusionMatrix], class_names: Sequence[str]
) -> Path:
    """Long-format per-class CSV: one row per (protocol/result, class); empty cell = undefined."""
    rows = []
    for key, cm in results.items():
        iou, acc = cm.iou(), cm.acc()
        inter, union, sup, pred = cm.intersection(), cm.union(), cm.support, cm.predicted
        for c, name in enumerate(class_names):
            rows.append(
                [
                    key,
                    c,
                    name,
                    "" if np.isnan(iou[c]) else repr(float(iou[c])),
                    "" if np.isnan(acc[c]) else repr(float(acc[c])),
                    int(inter[c]),
                    int(union[c]),
                    int(sup[c]),
                    int(pred[c]),
                ]
            )
    return _write_csv(path, PER_CLASS_HEADER, rows)


def read_per_class_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read `write_per_class_csv` output back (iou/acc as float or None)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in ("iou", "acc"):
            r[k] = float(r[k]) if r[k] != "" else None
        for k in ("class_id", "intersection", "union", "support", "predicted"):
            r[k] = int(r[k])
    return rows


def write_confusion_csv(
    path: str | os.PathLike, cm: ConfusionMatrix, class_names: Sequence[str]
) -> Path:
    """Counts with a header row of predicted class names and a first column of target names."""
    header = ["target\\pred", *class_names]
    rows = [[name, *map(int, cm.matrix[c])] for c, name in enumerate(class_names)]
    return _write_csv(path, header, rows)


def read_confusion_csv(
    path: str | os.PathLike, class_names: Sequence[str] | None = None
) -> ConfusionMatrix:
    """Read `write_confusion_csv` output; checks the class names when given."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    names = rows[0][1:]
    if class_names is not None and list(class_names) != names:
        raise ValueError(
            f"{path}: confusion matrix classes {names} do not match expected {list(class_names)}"
        )
    if [r[0] for r in rows[1:]] != names:
        raise ValueError(f"{path}: row labels do not match the header's class names")
    return ConfusionMatrix.from_matrix(
        np.array([[int(v) for v in r[1:]] for r in rows[1:]]), class_names=names
    )


def plot_confusion(
    path: str | os.PathLike,
    cm: ConfusionMatrix,
    class_names: Sequence[str],
    *,
    title: str = "",
    annotate: bool | None = None,
) -> Path:
    """Row-normalised confusion heat map (rows = target, sum to 1) as a PNG (matplotlib Agg).

    Rows of classes absent from the target are drawn empty (all zeros) and their name is marked
    with "(absent)". Cell values are printed when there are ≤ 20 classes (or `annotate=True`).
    """
    # Object-oriented API only: a bare Figure renders with Agg and leaves pyplot's global
    # backend/state alone (works headless, safe inside other programs).
    from matplotlib.figure import Figure

    norm = cm.normalized()
    c = len(class_names)
    annotate = c <= 20 if annotate is None else annotate
    size = max(5.0, 0.45 * c + 2.5)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of target row")
    sup = cm.support
    ylabels = [n if sup[i] > 0 else f"{n} (absent)" for i, n in enumerate(class_names)]
    ax.set_xticks(range(c), labels=list(class_names), rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(c), labels=ylabels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title, fontsize=10)
    if annotate:
        for i in range(c):
            for j in range(c):
                v = norm[i, j]
                if v >= 0.005:
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if v > 0.5 else "black",
                    )
    fig.tight_layout()
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return Path(path)


def write_eval_outputs(
    out: Path,
    metrics: dict[str, Any],
    results: Mapping[str, ConfusionMatrix],
    names: Sequence[str],
    *,
    title_prefix: str,
    tags: Mapping[str, str] | None = None,
) -> None:
    """An evaluation's folder: confusion_<tag>.csv/.png per protocol (`tags` maps a protocol name
    to its file tag, default the name), per_class.csv and metrics.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, cm in results.items():
        tag = (tags or {}).get(name, name)
        write_confusion_csv(out / f"confusion_{tag}.csv", cm, names)
        plot_confusion(
            out / f"confusion_{tag}.png",
            cm,
            names,
            title=f"{title_prefix} — {name} (row-normalised); mIoU {fmt_pct(cm.miou())}",
        )
    write_per_class_csv(out / "per_class.csv", results, names)
    write_json(out / "metrics.json", metrics)
