"""`pointseg demo [--out reports/demo] [--quick]`: the end-to-end demo, from nothing to a report.

Stages (each timed): synthesise S3DIS-format rooms (`pointseg.data.synthetic.synth_s3dis`) →
prepare the room cache (`prepare_s3dis`) → cut HDF5 training blocks (`make_s3dis_blocks`) → train
a PlainGCN and a ResGCN of the same depth and width (`pointseg.engine.train`) → evaluate both on
every point of the held-out area (whole-room protocol, `pointseg.engine.evaluate.evaluate_rooms`)
→ write `<out>/report.md` with both models' per-class IoU side by side (keyed by class name),
OA/mAcc/mIoU, confusion matrices, training curves and a ground truth / PlainGCN / ResGCN picture of
a test room.

The point it shows (DeepGCNs, Li et al. ICCV'19): at this depth the plain GCN trains badly — its
training loss stalls — while the residual GCN of the same depth keeps converging and segments the
rooms clearly better. Sizes (`DEMO_DEFAULTS`, mirrored in configs/demo.yaml) are chosen so the whole
demo takes at most ~10 minutes on 2 CPU cores; `--quick` is a tiny version for the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.errors import ConfigError

# Demo parameters. configs/demo.yaml holds the same values (a test keeps them in sync); pass
# `--config my.yaml` to change any of them (nested keys are merged into these).
DEMO_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "synth": {"areas": 3, "rooms_per_area": 2, "density": 1.0},
    "test_area": 3,
    "blocks": {"num_point": 256, "block_size": 1.0, "stride": 0.5, "min_points": 100},
    # Same depth, width, k and head for both; only the block type (and dilation) differ. 56 graph
    # layers of 8 channels: deep enough that the plain stack visibly trains worse within minutes
    # (at 28 layers × 16 channels the two were still close after 120 steps). k = 4 keeps the
    # deepest dilated graph (k·d = 4·55 = 220 neighbours) inside a 256-point block.
    "models": {
        "PlainGCN-56": {
            "name": "plaingcn28",
            "channels": 8,
            "num_blocks": 56,
            "k": 4,
            "fusion_channels": 128,
            "head_channels": [64, 32],
        },
        "ResGCN-56": {
            "name": "resgcn28",
            "channels": 8,
            "num_blocks": 56,
            "k": 4,
            "fusion_channels": 128,
            "head_channels": [64, 32],
        },
    },
    # TrainConfig keys shared by both runs.
    "train": {
        "epochs": 6,
        "batch_size": 8,
        "lr": 0.002,
        "scheduler": "step",
        "step_size": 4,
        "gamma": 0.5,
        "val_fraction": 0.25,
    },
    # Whole-room evaluation with the paper's test stride (1 m); cover_all still scores every point.
    "eval": {"stride": 1.0, "batch_size": 16},
}

# --quick: a tiny version (< 60 s) that exercises every stage and report file.
QUICK_OVERRIDES: dict[str, Any] = {
    "synth": {"areas": 2, "rooms_per_area": 1, "density": 0.25},
    "test_area": 2,
    "blocks": {"num_point": 128, "min_points": 30},
    "models": {
        "PlainGCN-5": {
            "name": "plaingcn28",
            "channels": 8,
            "num_blocks": 5,
            "k": 4,
            "fusion_channels": 16,
            "head_channels": [16, 16],
        },
        "ResGCN-5": {
            "name": "resgcn28",
            "channels": 8,
            "num_blocks": 5,
            "k": 4,
            "fusion_channels": 16,
            "head_channels": [16, 16],
        },
    },
    "train": {
        "epochs": 1,
        "batch_size": 8,
        "max_train_samples": 16,
        "max_val_samples": 8,
        "val_fraction": 0.1,
    },
    "eval": {"stride": 1.0, "batch_size": 32},
}

_TOP_KEYS = set(DEMO_DEFAULTS)


def _merge(base: dict, over: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if path == "" and key not in _TOP_KEYS:
            raise ConfigError(
                f"unknown demo config key {key!r}; valid keys: {', '.join(sorted(DEMO_DEFAULTS))}"
            )
        if key == "models" and path == "":
            out[key] = copy.deepcopy(value)  # the model set is replaced, not merged
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, f"{path}{key}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def demo_config(quick: bool = False, config: str | Path | None = None) -> dict:
    """DEMO_DEFAULTS, then the --quick overrides, then a YAML file (merged key by key)."""
    cfg = copy.deepcopy(DEMO_DEFAULTS)
    if quick:
        cfg = _merge(cfg, QUICK_OVERRIDES)  # `models` is replaced as a whole
    if config is not None:
        from pointseg.engine.train import load_config_file

        cfg = _merge(cfg, load_config_file(config))
    if len(cfg["models"]) < 1:
        raise ConfigError("demo config: `models` must name at least one model")
    return cfg


class _Stages:
    """Times named stages and prints each one as it finishes."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.t0 = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, name: str):
        print(f"[demo] {name} …", file=sys.stderr, flush=True)
        t = time.perf_counter()
        yield
        self.times[name] = time.perf_counter() - t
        print(f"[demo] {name}: {self.times[name]:.1f} s", file=sys.stderr, flush=True)

    @property
    def total(self) -> float:
        return time.perf_counter() - self.t0


def _picture(path: Path, predictions: dict[str, Path], title: str) -> None:
    """Ground truth and each model's prediction of one room, side by side.

    Drawn by the viewer's static renderer (`visualize.static`, what `pointseg view --no-window`
    draws: one renderer for both): seen from the top with the ceiling removed, every panel under
    the same camera, each model's panel titled with its mIoU on this room.
    """
    from visualize.sources import load_scene
    from visualize.static import render_static

    scene = load_scene(list(predictions.values()), names=list(predictions), print_fn=None)
    scene.title = title
    render_static(path=path, scene=scene, view="top", hide_ceiling=True, point_size=5.0)


def run_demo(
    out: str | Path,
    *,
    quick: bool = False,
    config: str | Path | None = None,
    work: str | Path | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Run every stage and write the report folder; returns the summary written to demo.json."""
    import torch

    from pointseg.checkpoint import model_from_checkpoint
    from pointseg.data.blocks import make_s3dis_blocks
    from pointseg.data.s3dis import CLASSES, prepare_s3dis, read_index
    from pointseg.data.synthetic import synth_s3dis
    from pointseg.engine.evaluate import evaluate_rooms
    from pointseg.engine.plots import plot_loss_comparison
    from pointseg.engine.report import format_metrics_table, plot_confusion, write_json
    from pointseg.engine.train import TrainConfig, resolve_config, train
    from pointseg.io import atomic_write_text

    cfg = demo_config(quick, config)
    out = Path(out)
    work = Path(work) if work is not None else out / "work"
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    stage = _Stages()
    seed = int(cfg["seed"])
    raw, cache, blocks = work / "raw", work / "cache", work / "blocks"

    with stage("synthesise rooms"):
        s = cfg["synth"]
        synth_s3dis(
            raw,
            areas=s["areas"],
            rooms_per_area=s["rooms_per_area"],
            seed=seed,
            density=s["density"],
            progress=progress,
        )
    with stage("prepare room cache"):
        result = prepare_s3dis(raw, cache, progress=progress)
        if not result.ok:
            raise ConfigError(f"demo: preparing the synthetic rooms failed: {result.failed}")
    index = read_index(cache)
    test_area = int(cfg["test_area"])
    test_rooms = [r for r in index["rooms"] if r["area"] == f"Area_{test_area}"]
    if not test_rooms:
        raise ConfigError(
            f"demo config: test_area {test_area} is not among the {cfg['synth']['areas']} synthesised areas"
        )
    with stage("cut training blocks"):
        b = cfg["blocks"]
        manifest = make_s3dis_blocks(
            cache, blocks, split="train", num_point=b["num_point"], block_size=b["block_size"], stride=b["stride"],
            min_points=b["min_points"], seed=seed, overwrite=True, progress=progress,
        )  # fmt: skip

    runs: dict[str, Path] = {}
    train_info: dict[str, dict] = {}
    for label, spec in cfg["models"].items():
        spec = dict(spec)
        name = spec.pop("name")
        tc: TrainConfig = resolve_config(
            "s3dis",
            base={
                **cfg["train"],
                "model": name,
                "model_args": spec,
                "blocks": str(blocks),
                "cache": str(cache),
                "test_area": test_area,
                "out_dir": str(out / "runs"),
                "run": label.lower().replace("-", ""),
                "seed": seed,
                "threads": threads,
                "tensorboard": False,
                "progress": progress,
            },
        )
        with stage(f"train {label}"):
            t = time.perf_counter()
            runs[label] = train(tc, overwrite=True)
            train_info[label] = {"seconds": time.perf_counter() - t}

    results = {}
    histories, steps = {}, {}
    preds: dict[str, Path] = {}
    room_stats: dict[str, list] = {}
    for label, run in runs.items():
        with stage(f"evaluate {label} (whole room)"):
            model, ckpt = model_from_checkpoint(run / "best.pt")
            e = cfg["eval"]
            preds[label] = out / "predictions" / label
            cm, rooms = evaluate_rooms(
                model, cache, test_area, num_classes=len(CLASSES), class_names=list(CLASSES), num_point=cfg["blocks"]["num_point"],
                block_size=cfg["blocks"]["block_size"], stride=e["stride"], min_points=cfg["blocks"]["min_points"],
                batch_size=e["batch_size"], seed=seed, predictions_dir=preds[label], progress=progress,
            )  # fmt: skip
            results[label] = cm
            room_stats[label] = rooms
        last = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
        histories[label], steps[label] = last["history"], last["steps"]
        train_info[label].update(
            parameters=int(
                sum(
                    v.numel()
                    for k, v in ckpt["model"].items()
                    if "running" not in k and "num_batches" not in k
                )
            ),
            best_epoch=ckpt["meta"].get("best_epoch"),
            best_val_miou=ckpt["meta"].get("best"),
            # mean step loss of the first and the last tenth of training
            first_train_loss=float(
                np.mean([st[3] for st in last["steps"][: max(1, len(last["steps"]) // 10)]])
            ),
            final_train_loss=float(
                np.mean([st[3] for st in last["steps"][-max(1, len(last["steps"]) // 10) :]])
            ),
            final_train_acc=last["history"][-1]["train_acc"],
            steps=last["step"],
        )

    with stage("write report"):
        labels = list(runs)
        for label in labels:
            plot_confusion(
                out / f"confusion_{_slug(label)}.png",
                results[label],
                list(CLASSES),
                title=f"{label} — whole-room, Area_{test_area}",
            )
        plot_loss_comparison(
            histories,
            out / "curves.png",
            steps=steps,
            metric="val_miou",
            metric_label="validation mIoU (block-sampled)",
            title="PlainGCN vs ResGCN, same depth",
        )
        room = sorted(r["room"] for r in test_rooms)[0]
        _picture(
            out / "comparison.png",
            {label: preds[label] / f"Area_{test_area}_{room}.npz" for label in labels},
            f"Area_{test_area}/{room}",
        )
    summary = _summary(cfg, quick, index, manifest, test_area, results, train_info, stage, labels)
    summary["seconds"]["total"] = stage.total
    # CPU time of this process: on a shared machine the wall-clock total overstates the demo's cost.
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    summary["cpu_seconds"] = ru.ru_utime + ru.ru_stime
    summary["threads"] = torch.get_num_threads()
    write_json(out / "demo.json", summary)
    atomic_write_text(
        out / "report.md",
        _markdown(summary, results, labels, format_metrics_table, test_area, room),
    )
    return summary


def _slug(label: str) -> str:
    return label.lower().replace("-", "")


def _summary(cfg, quick, index, manifest, test_area, results, train_info, stage, labels) -> dict:
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


def _markdown(
    summary: dict, results: dict, labels: list[str], format_metrics_table, test_area: int, room: str
) -> str:
    from pointseg.data.s3dis import CLASSES

    m = summary["models"]
    d = summary["data"]
    secs = summary["seconds"]
    lines = [
        "# pointseg demo: PlainGCN vs ResGCN on synthetic S3DIS rooms",
        "",
        f"Generated by `pointseg demo{' --quick' if summary['quick'] else ''}`. Synthetic rooms in the raw Stanford "
        f"layout ({d['rooms']} rooms, {d['points']:,} points) → room cache → HDF5 blocks → two models of the same "
        f"depth and width trained on the other areas → **whole-room** evaluation (every original point, votes over "
        f"overlapping blocks) on Area_{test_area} ({', '.join(d['test_rooms'])}; {d['test_points']:,} points). "
        "Validation (best checkpoint) used held-out training rooms, never the test area.",
        "",
    ]
    if len(labels) == 2:
        a, b = labels
        diff = 100 * (m[b]["miou"] - m[a]["miou"])
        verdict = "beats" if diff > 0 else "does not beat"
        lines += [
            f"**Result: {b} {verdict} {a} by {diff:+.1f} mIoU points** "
            f"({100 * m[b]['miou']:.1f} vs {100 * m[a]['miou']:.1f}); training loss "
            f"{m[b]['first_train_loss']:.3f} → {m[b]['final_train_loss']:.3f} ({b}) vs "
            f"{m[a]['first_train_loss']:.3f} → {m[a]['final_train_loss']:.3f} ({a}).",
            "",
        ]
    lines += [
        "## Overall (whole-room protocol)",
        "",
        "| model | OA % | mAcc % | mIoU % | parameters | steps | train time s | train loss (last 10% of steps) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in labels:
        r = m[label]
        lines.append(
            f"| {label} | {100 * r['oa']:.2f} | {100 * r['macc']:.2f} | {100 * r['miou']:.2f} | {r['parameters']:,} | "
            f"{r['steps']} | {r['seconds']:.0f} | {r['final_train_loss']:.3f} |"
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
        "Left: training loss per step (faint) and per epoch; right: validation mIoU (block-sampled, held-out training rooms).",
        "",
        f"## Ground truth vs predictions (Area_{test_area}/{room})",
        "",
        "![comparison](comparison.png)",
        "",
        "## Confusion matrices (row-normalised, whole-room)",
        "",
    ]
    for label in labels:
        lines += [f"![{label} confusion](confusion_{_slug(label)}.png)", ""]
    lines += ["## Timings (this machine)", "", "| stage | seconds |", "|---|---:|"]
    for name, s in secs.items():
        lines.append(f"| {name} | {s:.1f} |")
    lines += [
        "",
        f"Process CPU time {summary.get('cpu_seconds', float('nan')):.0f} s with {summary.get('threads', '?')} torch threads "
        "(wall-clock time is higher when other jobs share the CPU).",
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


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="end-to-end demo: synthetic rooms → prepare → blocks → train PlainGCN & ResGCN → whole-room eval → report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="reports/demo", help="report folder (default reports/demo)")
    p.add_argument(
        "--quick", action="store_true", help="tiny version (< 1 minute) that exercises every stage"
    )
    p.add_argument(
        "--config",
        metavar="YAML",
        help="demo settings to merge over the defaults (see configs/demo.yaml)",
    )
    p.add_argument("--work", metavar="DIR", help="where data and runs go (default <out>/work)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: the demo's 8-channel layers are too small to gain from "
        "intra-op threads; with 2 threads on a shared 2-core machine an epoch took ~3x longer)",
    )
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm progress bars"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    summary = run_demo(
        args.out,
        quick=args.quick,
        config=args.config,
        work=args.work,
        threads=args.threads,
        progress=args.progress,
    )
    out = Path(args.out)
    print(
        "\n[demo] stage times: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in summary["seconds"].items()),
        file=sys.stderr,
    )
    print(
        f"[demo] process CPU time {summary['cpu_seconds']:.0f} s ({summary['threads']} threads)",
        file=sys.stderr,
    )
    for label, r in summary["models"].items():
        print(
            f"[demo] {label}: OA {100 * r['oa']:.2f}  mAcc {100 * r['macc']:.2f}  mIoU {100 * r['miou']:.2f} (whole-room)",
            file=sys.stderr,
        )
    print(out / "report.md")
    return 0 if all(math.isfinite(r["miou"]) for r in summary["models"].values()) else 1
