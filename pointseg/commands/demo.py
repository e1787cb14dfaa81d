"""`pointseg demo [--out reports/demo] [--quick | --long]`: the end-to-end demo, from nothing to a report.

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
demo takes at most ~10 minutes on 2 CPU cores: the two models train at the same time, one process
and one torch thread each (`parallel`). `--quick` is a tiny version for the test suite; `--long`
trains the same pair to convergence (<= 60 minutes) and reports how far the 10-minute run is from
it. Measurements and the learning curve that chose these sizes: docs/demo.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
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
    # 32 rooms, 24 for training: at 16 rooms the ResGCN overfits by epoch 10 (train accuracy
    # 0.83, validation mIoU flat at 44 %); the cheap static-graph steps pay for 2x the data.
    "synth": {"areas": 4, "rooms_per_area": 8, "density": 1.0},
    "test_area": 4,
    "blocks": {"num_point": 512, "block_size": 1.0, "stride": 0.5, "min_points": 100},
    # Same depth, width, k, graph and head for both; only the block type differs (docs/demo.md,
    # "The demo's architecture"). 28 graph layers of 32 channels (the paper's depth), k = 8, two
    # departures from the paper's S3DIS models, both measured:
    # - dynamic: false: every layer reuses the kNN graph of the block's xyz (the paper rebuilds
    #   a dilated graph on each layer's features). Same validation mIoU per step, 2.4x cheaper
    #   steps (0.38 vs 0.92 CPU s), so 2.4x the steps fit in the 10 minutes. Without the
    #   per-layer graph, dilation has no effect: both models are identical but for the block.
    # - fusion_layers: last: the fusion takes the last layer's output alone (the paper
    #   concatenates all 28). With every layer fused, the plain stack's shallow layers carry it
    #   and its failure does not show within minutes (docs/demo.md); with the last layer only,
    #   the signal must cross all 28 layers, which is what residual connections are for.
    # dropout 0: the head's dropout only slowed the few epochs the demo trains (measured).
    "models": {
        "PlainGCN-28": {
            "name": "plaingcn28",
            "channels": 32,
            "num_blocks": 28,
            "k": 8,
            "dynamic": False,
            "dilation": False,
            "stochastic": False,
            "fusion_layers": "last",
            "fusion_channels": 256,
            "head_channels": [128, 64],
            "dropout": 0.0,
        },
        "ResGCN-28": {
            "name": "resgcn28",
            "channels": 32,
            "num_blocks": 28,
            "k": 8,
            "dynamic": False,
            "dilation": False,
            "stochastic": False,
            "fusion_layers": "last",
            "fusion_channels": 256,
            "head_channels": [128, 64],
            "dropout": 0.0,
        },
    },
    # TrainConfig keys shared by both runs: per-step cosine with a short warm-up (a few epochs
    # need a decay per step, not per epoch) and loss weights 1/sqrt(class frequency) (ceiling,
    # floor and wall hold most points; mIoU weighs every class alike). Validation: 1 of the 12
    # training rooms.
    "train": {
        "epochs": 12,
        "batch_size": 8,
        "lr": 0.002,
        "scheduler": "warmup_cosine",
        "warmup_steps": 20,
        "min_lr": 1.0e-5,
        "class_weights": "inverse_sqrt",
        "val_fraction": 0.1,
    },
    # Whole-room evaluation with the paper's test stride (1 m); cover_all still scores every point.
    "eval": {"stride": 1.0, "batch_size": 16},
    # Train the models at the same time, one process each with `--threads` torch threads.
    "parallel": True,
}

# --quick: a tiny version (< 60 s) that exercises every stage and report file (same architecture,
# tiny sizes).
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
            "dynamic": False,
            "dilation": False,
            "stochastic": False,
            "fusion_layers": "last",
            "fusion_channels": 16,
            "head_channels": [16, 16],
            "dropout": 0.0,
        },
        "ResGCN-5": {
            "name": "resgcn28",
            "channels": 8,
            "num_blocks": 5,
            "k": 4,
            "dynamic": False,
            "dilation": False,
            "stochastic": False,
            "fusion_layers": "last",
            "fusion_channels": 16,
            "head_channels": [16, 16],
            "dropout": 0.0,
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

# --long: the same pair trained to convergence (<= 60 minutes on 2 cores): twice the rooms and
# twice the epochs, i.e. 4x the default's optimiser steps (10,560 steps; measured 31 minutes on
# the shared 2-core machine, docs/demo.md); every other setting (models, optimiser, schedule
# shape) is the default's.
LONG_OVERRIDES: dict[str, Any] = {
    "synth": {"rooms_per_area": 2 * DEMO_DEFAULTS["synth"]["rooms_per_area"]},
    "train": {"epochs": 2 * DEMO_DEFAULTS["train"]["epochs"]},
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


def demo_config(quick: bool = False, config: str | Path | None = None, long: bool = False) -> dict:
    """DEMO_DEFAULTS, then the --quick or --long overrides, then a YAML file (merged key by key)."""
    if quick and long:
        raise ConfigError("demo: --quick and --long exclude each other")
    cfg = copy.deepcopy(DEMO_DEFAULTS)
    if long:
        cfg = _merge(cfg, LONG_OVERRIDES)
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
    long: bool = False,
    compare: str | Path | None = None,
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

    cfg = demo_config(quick, config, long=long)
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

    configs: dict[str, TrainConfig] = {}
    for label, spec in cfg["models"].items():
        spec = dict(spec)
        name = spec.pop("name")
        configs[label] = resolve_config(
            "s3dis",
            base={
                **cfg["train"],
                "model": name,
                "model_args": spec,
                "blocks": str(blocks),
                "cache": str(cache),
                "test_area": test_area,
                "out_dir": str(out / "runs"),
                "run": _slug(label),
                "seed": seed,
                "threads": threads,
                "tensorboard": False,
                "progress": progress,
            },
        )
    runs: dict[str, Path] = {}
    train_info: dict[str, dict] = {}
    if cfg["parallel"] and len(configs) > 1:
        with stage(f"train {' + '.join(configs)} (parallel)"):
            for label, (run, seconds, cpu) in _train_parallel(configs, progress).items():
                runs[label] = run
                train_info[label] = {"seconds": seconds, "cpu_seconds": cpu}
    else:
        for label, tc in configs.items():
            with stage(f"train {label}"):
                t, c = time.perf_counter(), time.process_time()
                runs[label] = train(tc, overwrite=True)
                train_info[label] = {
                    "seconds": time.perf_counter() - t,
                    "cpu_seconds": time.process_time() - c,
                }

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
            # The validation loss of a few epochs spikes (BatchNorm running statistics of a
            # model still moving fast) and would squash the training losses the plot is for.
            val_loss=False,
        )
        room = sorted(r["room"] for r in test_rooms)[0]
        _picture(
            out / "comparison.png",
            {label: preds[label] / f"Area_{test_area}_{room}.npz" for label in labels},
            f"Area_{test_area}/{room}",
        )
    summary = _summary(cfg, quick, index, manifest, test_area, results, train_info, stage, labels)
    summary["seconds"]["total"] = stage.total
    summary["long"] = long
    summary["compare"] = _load_compare(compare) if long else None
    # CPU time of this process: on a shared machine the wall-clock total overstates the demo's cost.
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    rc = resource.getrusage(resource.RUSAGE_CHILDREN)  # the training processes (reaped)
    summary["cpu_seconds"] = ru.ru_utime + ru.ru_stime + rc.ru_utime + rc.ru_stime
    summary["threads"] = torch.get_num_threads()
    write_json(out / "demo.json", summary)
    atomic_write_text(
        out / "report.md",
        _markdown(summary, results, labels, format_metrics_table, test_area, room),
    )
    return summary


def _train_child(cfg: dict, log: str) -> tuple[str, float, float]:
    """One training run in a worker process; its stderr (epoch lines, warnings) goes to `log`.

    Returns the run folder, wall seconds and CPU seconds of the run (on a shared machine the CPU
    time of a 1-thread run is what its wall time would be on an idle core)."""
    from pointseg.engine.train import TrainConfig, train

    t, c = time.perf_counter(), time.process_time()
    with open(log, "w", buffering=1) as fh, contextlib.redirect_stderr(fh):
        run = train(TrainConfig.from_dict(cfg, source=log), overwrite=True)
    return str(run), time.perf_counter() - t, time.process_time() - c


def _train_parallel(configs: dict, progress: bool) -> dict[str, tuple[Path, float, float]]:
    """Train every model at the same time, one process each (`cfg.threads` torch threads each).

    On 2 cores two 1-thread processes finish both models sooner than one 2-thread process training
    them one after the other: the demo's small layers gain little from intra-op threads (see
    docs/demo.md). Each child's output goes to `<run>/train.log`; the parent shows one progress bar
    per model, advanced when a child finishes an epoch (read from its `log.csv`).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads can hang
    bars, futures = {}, {}
    with ProcessPoolExecutor(max_workers=len(configs), mp_context=ctx) as pool:
        for i, (label, tc) in enumerate(configs.items()):
            tc.run_dir.mkdir(parents=True, exist_ok=True)
            (tc.run_dir / "log.csv").unlink(missing_ok=True)  # a previous demo's epochs
            child = dataclasses.replace(tc, progress=False)
            futures[label] = pool.submit(
                _train_child, child.to_dict(), str(tc.run_dir / "train.log")
            )
            bars[label] = tqdm(
                total=tc.epochs, desc=label, unit="epoch", position=i, disable=not progress,
                dynamic_ncols=True,
            )  # fmt: skip
        done: set[str] = set()
        while len(done) < len(futures):
            time.sleep(1.0)
            for label, fut in futures.items():
                epochs, last = _epochs_logged(configs[label].run_dir / "log.csv")
                if epochs > bars[label].n:
                    bars[label].set_postfix_str(last, refresh=False)
                    bars[label].update(epochs - bars[label].n)
                if fut.done() and label not in done:
                    done.add(label)
                    if fut.exception() is None:
                        bars[label].close()
                        print(f"[demo] {label}: {last or 'done'}", file=sys.stderr, flush=True)
        for bar in bars.values():
            bar.close()
        # Raises the first child's error (with the path of its train.log for the details).
        results = {}
        for label, fut in futures.items():
            try:
                run, seconds, cpu = fut.result()
            except Exception as exc:
                log = configs[label].run_dir / "train.log"
                raise RuntimeError(f"training {label} failed ({exc}); see {log}") from exc
            results[label] = (Path(run), seconds, cpu)
    return results


def _epochs_logged(log_csv: Path) -> tuple[int, str | None]:
    """Finished epochs in a run's log.csv and a short summary of the last one."""
    import csv

    try:
        rows = list(csv.DictReader(log_csv.read_text().splitlines()))
    except (FileNotFoundError, OSError):
        return 0, None
    if not rows:
        return 0, None
    r = rows[-1]
    text = f"loss {float(r['train_loss']):.3f}"
    if r.get("val_miou"):
        text += f", val mIoU {100 * float(r['val_miou']):.1f}"
    return len(rows), text


def _load_compare(path: str | Path | None) -> dict | None:
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


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="end-to-end demo: synthetic rooms → prepare → blocks → train PlainGCN & ResGCN → whole-room eval → report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", help="report folder (default reports/demo; reports/demo-long with --long)"
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny version (< 1 minute) that exercises every stage"
    )
    p.add_argument(
        "--long",
        action="store_true",
        help="train the same pair to convergence (<= 60 minutes on 2 cores: 2x rooms, more "
        "epochs) and report how far the 10-minute demo is from it",
    )
    p.add_argument(
        "--compare",
        metavar="DEMO_JSON",
        help="--long: the 10-minute demo's demo.json to compare with (default reports/demo/demo.json)",
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
        help="torch threads per training process (default 1: the two models train at the same "
        "time, one per core; a 2-thread step of the demo's ResGCN-28 is only ~1.1x faster)",
    )
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm progress bars"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or ("reports/demo-long" if args.long else "reports/demo"))
    compare = args.compare or ("reports/demo/demo.json" if args.long else None)
    if args.compare and not Path(args.compare).exists():
        raise ConfigError(f"--compare {args.compare}: file not found")
    summary = run_demo(
        out,
        quick=args.quick,
        long=args.long,
        compare=compare,
        config=args.config,
        work=args.work,
        threads=args.threads,
        progress=args.progress,
    )
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
