"""S3DIS 6-fold: one model per test area, confusion matrices pooled over the areas.

The confusion matrices of the six test areas are summed (pooled intersections and unions) — not
the mean of six mIoUs, which is reported next to it, labelled as such, for comparison only.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pointseg.engine.checkpoints import checkpoint_task, meta_data, resolve_checkpoint
from pointseg.engine.report import fmt_pct, format_metrics_table, write_eval_outputs
from pointseg.engine.s3dis_eval import (
    PROTOCOL_DESCRIPTIONS,
    PROTOCOL_TAGS,
    PROTOCOLS,
    Print,
    evaluate_s3dis,
)
from pointseg.errors import ConfigError
from pointseg.metrics import ConfusionMatrix, mean_of_mious
from pointseg.runtime import peak_rss_mb


def six_fold(
    runs: Sequence[str | os.PathLike],
    *,
    out: str | os.PathLike | None = None,
    areas: Sequence[int] | None = None,
    cache: str | os.PathLike | None = None,
    blocks: str | os.PathLike | None = None,
    protocol: str = "both",
    batch_size: int = 8,
    num_point: int | None = None,
    stride: float = 0.5,
    device: str | None = None,
    seed: int = 0,
    save_predictions: bool = True,
    progress: bool = True,
    print_fn: Print | None = print,
) -> dict[str, Any]:
    """Pool the confusion matrices of one model per test area (6-fold S3DIS protocol).

    Each run (run dir or checkpoint) is evaluated with `evaluate_s3dis(..., reuse=True)`, so a
    previous `pointseg eval` of the same checkpoint and settings in `<ckpt dir>/eval_area<k>/` is
    reused. Each test area must appear once; fewer than six runs are pooled with a warning.
    """
    from pointseg.checkpoint import load_checkpoint

    say = print_fn or (lambda s: None)
    if not runs:
        raise ConfigError("eval-6fold: give one run (dir or checkpoint) per test area with --runs")
    paths = [resolve_checkpoint(r) for r in runs]
    if areas is not None and len(areas) != len(paths):
        raise ConfigError(
            f"eval-6fold: {len(paths)} runs but {len(areas)} areas given with --areas"
        )
    fold_areas: list[int] = []
    for i, p in enumerate(paths):
        if areas is not None:
            fold_areas.append(int(areas[i]))
            continue
        ckpt = load_checkpoint(p)
        if checkpoint_task(ckpt) != "s3dis":
            raise ConfigError(f"eval-6fold: {p} is not an S3DIS segmentation checkpoint")
        a = meta_data(ckpt).get("test_area")
        if a is None:
            raise ConfigError(
                f"eval-6fold: {p} does not record its test area; pass --areas <one per run>"
            )
        fold_areas.append(int(a))
    seen: dict[int, Path] = {}
    for a, p in zip(fold_areas, paths, strict=True):
        if not 1 <= a <= 6:
            raise ConfigError(f"eval-6fold: {p} has test area {a}; S3DIS areas are 1..6")
        if a in seen:
            raise ConfigError(
                f"eval-6fold: test area {a} appears twice ({seen[a]} and {p}); give one run per area 1..6"
            )
        seen[a] = p
    missing = sorted(set(range(1, 7)) - set(seen))
    if missing:
        msg = (
            f"eval-6fold: pooling {len(seen)} of 6 folds (missing test areas {missing}); "
            "this is not the full 6-fold protocol"
        )
        warnings.warn(msg, stacklevel=2)
        if print_fn is not None:
            print(f"warning: {msg}", file=sys.stderr)

    keys = ["block", "room"] if protocol == "both" else [protocol]
    per_fold: list[dict[str, Any]] = []
    fold_cms: dict[str, list[ConfusionMatrix]] = {PROTOCOLS[k]: [] for k in keys}
    names: list[str] | None = None
    for a, p in sorted(zip(fold_areas, paths, strict=True)):
        say(f"\n=== fold: test Area_{a} — {p}")
        m = evaluate_s3dis(
            p,
            area=a,
            cache=cache,
            blocks=blocks,
            protocol=protocol,
            batch_size=batch_size,
            num_point=num_point,
            stride=stride,
            device=device,
            seed=seed,
            save_predictions=save_predictions,
            reuse=True,
            progress=progress,
            print_fn=None,
        )
        names = m["classes"]
        fold = {"test_area": a, "checkpoint": str(p.resolve()), "protocols": {}}
        for name in fold_cms:
            entry = m["protocols"][name]
            fold_cms[name].append(
                ConfusionMatrix.from_matrix(entry["confusion"], class_names=names)
            )
            fold["protocols"][name] = {
                k: entry.get(k) for k in ("oa", "macc", "miou", "points", "reused") if k in entry
            }
            say(
                f"  {name}: mIoU {fmt_pct(entry['miou'])}  OA {fmt_pct(entry['oa'])}"
                + ("  (reused)" if entry.get("reused") else "")
            )
        per_fold.append(fold)

    assert names is not None
    pooled = {name: sum(cms) for name, cms in fold_cms.items()}
    entries = {}
    for name, cm in pooled.items():
        entries[name] = {
            "name": name,
            "description": "pooled over folds: summed confusion matrices (intersections and unions) of "
            + PROTOCOL_DESCRIPTIONS[name],
            **cm.as_dict(names),
            "mean_of_fold_mious": mean_of_mious(fold_cms[name]),
            "mean_of_fold_mious_note": "mean of the per-area mIoUs: NOT the 6-fold metric, shown for comparison",
        }
    areas_sorted = sorted(seen)
    out = Path(out) if out is not None else paths[0].parent.parent / "eval_6fold"
    metrics = {
        "dataset": "s3dis",
        "protocol": "6-fold" if len(seen) == 6 else f"{len(seen)}-fold (partial)",
        "test_areas": areas_sorted,
        "classes": names,
        "folds": per_fold,
        "protocols": entries,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    write_eval_outputs(
        out,
        metrics,
        pooled,
        names,
        title_prefix=f"S3DIS pooled areas {areas_sorted}",
        tags=PROTOCOL_TAGS,
    )
    label = metrics["protocol"]
    say(
        f"\nS3DIS {label} pooled per-class IoU (%) (summed intersections / unions)\n{format_metrics_table(pooled, names)}"
    )
    for name, e in entries.items():
        say(
            f"{name}: pooled mIoU {fmt_pct(e['miou'])}; mean of per-fold mIoUs (not the {label} metric) "
            f"{fmt_pct(e['mean_of_fold_mious'])}"
        )
    say(f"wrote {out}")
    return metrics


__all__ = ["six_fold"]
