"""The demo's report: demo.json's summary and report.md (results, comparison with the 10-minute
run for --long, the models' shared and differing settings)."""

from __future__ import annotations

import json
from pathlib import Path

from pointseg.errors import ConfigError


def load_compare(path: str | Path | None) -> dict | None:
    """The 10-minute demo's demo.json (path, total seconds, per-model metrics) or None."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        path = path / "demo.json"
    if not path.is_file():
        return None
    try:
        ref = json.loads(path.read_text())
        return {
            "path": str(path),
            "total_s": float(ref["seconds"]["total"]),
            "models": {
                k: {"miou": float(v["miou"]), "oa": float(v["oa"])}
                for k, v in ref["models"].items()
            },
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"--compare {path}: not a demo.json written by `pointseg demo` ({exc})"
        ) from None


def _comparison_lines(summary: dict, labels: list[str]) -> list[str]:
    """`--long` only: how far the 10-minute demo (its demo.json, if found) is from this run."""
    ref = summary.get("compare")
    if not summary.get("long"):
        return []
    if not ref:
        return [
            "The 10-minute demo was not found for comparison (run `pointseg demo` first, or pass "
            "`--compare <its demo.json>`).",
            "",
        ]
    lines = [
        "## The 10-minute demo vs this run (to convergence)",
        "",
        f"Compared with `{ref['path']}` ({ref['total_s'] / 60:.1f} min).",
        "",
        "| model | 10-minute mIoU % | --long mIoU % | 10-minute is behind by | 10-minute OA % | --long OA % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    m = summary["models"]
    for label in labels:
        r = ref["models"].get(label)
        if r is None:
            lines.append(
                f"| {label} | — | {100 * m[label]['miou']:.1f} | — | — | {100 * m[label]['oa']:.1f} |"
            )
            continue
        lines.append(
            f"| {label} | {100 * r['miou']:.1f} | {100 * m[label]['miou']:.1f} | "
            f"{100 * (m[label]['miou'] - r['miou']):.1f} points | {100 * r['oa']:.1f} | {100 * m[label]['oa']:.1f} |"
        )
    return lines + [""]


def _architecture_line(models: dict) -> str:
    """What the models share and what differs, from their settings (not hard-coded)."""
    specs = list(models.values())
    keys = sorted({k for spec in specs for k in spec})
    differ = [k for k in keys if len({json.dumps(spec.get(k)) for spec in specs}) > 1]
    same = [k for k in keys if k not in differ]
    shared = ", ".join(f"{k} {specs[0][k]}" for k in same)
    if not differ:
        return f"Models (identical settings): {shared}."
    text = "; ".join(
        f"{k}: " + " / ".join(f"{spec.get(k)} ({label})" for label, spec in models.items())
        for k in differ
    )
    notes = []
    if "dynamic" in same and specs[0]["dynamic"] is False:
        notes.append("`dynamic False`: every layer uses the kNN graph of the points' xyz")
    if "fusion_layers" in same and specs[0]["fusion_layers"] == "last":
        notes.append(
            "`fusion_layers last`: the fusion sees the last layer's output only, so every layer "
            "lies on the path to the head"
        )
    notes_text = f" ({'; '.join(notes)}; docs/demo.md)" if notes else ""
    return f"Models: shared settings {shared}; differing only in {text}{notes_text}."


def slug(label: str) -> str:
    return label.lower().replace("-", "")


def summarize(cfg, quick, index, manifest, test_area, results, train_info, stage, labels) -> dict:
    rooms = index["rooms"]
    return {
        "quick": quick,
        "config": cfg,
        "data": {
            "rooms": len(rooms),
            "points": int(sum(r["points"] for r in rooms)),
            "test_area": test_area,
            "test_rooms": [r["room"] for r in rooms if r["area"] == f"Area_{test_area}"],
            "test_points": int(sum(r["points"] for r in rooms if r["area"] == f"Area_{test_area}")),
            "train_blocks_all_areas": int(manifest.get("blocks", 0))
            if isinstance(manifest, dict)
            else None,
        },
        "models": {
            label: {
                **train_info[label],
                "oa": results[label].oa(),
                "macc": results[label].macc(),
                "miou": results[label].miou(),
            }
            for label in labels
        },
        "seconds": dict(stage.times),
    }


def report_markdown(
    summary: dict, results: dict, labels: list[str], format_metrics_table, test_area: int, room: str
) -> str:
    from pointseg.data.s3dis import CLASSES

    m = summary["models"]
    d = summary["data"]
    secs = summary["seconds"]
    mode = " --long" if summary.get("long") else (" --quick" if summary["quick"] else "")
    lines = ["# pointseg demo: PlainGCN vs ResGCN on synthetic S3DIS rooms", ""]
    if len(labels) == 2:
        a, b = labels
        diff = 100 * (m[b]["miou"] - m[a]["miou"])
        lines += [
            f"**{b}: {100 * m[b]['miou']:.1f} % mIoU; {a}: {100 * m[a]['miou']:.1f} % mIoU; gap "
            f"{diff:+.1f} points** (whole-room, every point of the held-out Area_{test_area}).",
            "",
            f"Training loss {m[b]['first_train_loss']:.3f} → {m[b]['final_train_loss']:.3f} ({b}) vs "
            f"{m[a]['first_train_loss']:.3f} → {m[a]['final_train_loss']:.3f} ({a}), mean of the first "
            "and the last tenth of the steps.",
            "",
        ]
    else:
        lines += [
            "**"
            + "; ".join(f"{x}: {100 * m[x]['miou']:.1f} % mIoU" for x in labels)
            + "** (whole-room).",
            "",
        ]
    lines += [
        f"Generated by `pointseg demo{mode}` in {secs.get('total', float('nan')) / 60:.1f} min. Synthetic rooms in the raw Stanford "
        f"layout ({d['rooms']} rooms, {d['points']:,} points) → room cache → HDF5 blocks → models of the same "
        f"depth and width trained on the other areas → **whole-room** evaluation (every original point, votes over "
        f"overlapping blocks) on Area_{test_area} ({', '.join(d['test_rooms'])}; {d['test_points']:,} points). "
        "Validation (best checkpoint) used held-out training rooms, never the test area.",
        "",
        _architecture_line(summary["config"]["models"]),
        "",
    ]
    lines += _comparison_lines(summary, labels)
    lines += [
        "## Overall (whole-room protocol)",
        "",
        "| model | OA % | mAcc % | mIoU % | parameters | steps | train time s | train CPU s | train loss (last 10% of steps) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in labels:
        r = m[label]
        lines.append(
            f"| {label} | {100 * r['oa']:.2f} | {100 * r['macc']:.2f} | {100 * r['miou']:.2f} | {r['parameters']:,} | "
            f"{r['steps']} | {r['seconds']:.0f} | {r.get('cpu_seconds', float('nan')):.0f} | {r['final_train_loss']:.3f} |"
        )
    lines += [
        "",
        "## Per-class IoU (%), whole-room protocol, keyed by class name",
        "",
        format_metrics_table(
            {label: results[label] for label in labels}, list(CLASSES), markdown=True
        ),
        "",
        "## Training curves",
        "",
        "![training curves](curves.png)",
        "",
        "Left: training loss per step (faint) and per epoch; right: validation mIoU (block-sampled, held-out training rooms; the validation loss is in `runs/<model>/log.csv`).",
        "",
        f"## Ground truth vs predictions (Area_{test_area}/{room})",
        "",
        "![comparison](comparison.png)",
        "",
        "Interactive, in any browser (one self-contained file, works offline): "
        "[comparison.html](comparison.html) — colourings, class isolation, per-class IoU, "
        "keys as in `pointseg view`.",
        "",
        "## Confusion matrices (row-normalised, whole-room)",
        "",
    ]
    for label in labels:
        lines += [f"![{label} confusion](confusion_{slug(label)}.png)", ""]
    lines += ["## Timings (this machine)", "", "| stage | seconds |", "|---|---:|"]
    for name, s in secs.items():
        lines.append(f"| {name} | {s:.1f} |")
    lines += [
        "",
        f"CPU time {summary.get('cpu_seconds', float('nan')):.0f} s (the demo and its training processes, "
        f"{summary.get('threads', '?')} torch thread(s) each). Wall-clock time is higher when other jobs share the "
        "CPU; a 1-thread training process on an idle core takes about its CPU time.",
    ]
    lines += [
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(summary["config"], indent=1),
        "```",
        "",
    ]
    return "\n".join(lines)
