"""The demo's stages, run in order and timed: synthesise rooms → prepare the room cache → cut
training blocks → train the models (in parallel processes) → whole-room evaluation → report.

`run_demo` is the whole pipeline; `pointseg demo` only parses its arguments and calls it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from pointseg.demo.report import load_compare, report_markdown, slug, summarize
from pointseg.demo.settings import demo_config
from pointseg.errors import ConfigError


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
    # the same comparison to turn around in any browser, offline (`pointseg view --export-html`)
    from visualize.web_page import export_html

    export_html(scene, path.with_suffix(".html"))


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
                "run": slug(label),
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
            for label, (run, seconds, cpu) in train_parallel(configs, progress).items():
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
                out / f"confusion_{slug(label)}.png",
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
    summary = summarize(cfg, quick, index, manifest, test_area, results, train_info, stage, labels)
    summary["seconds"]["total"] = stage.total
    summary["long"] = long
    summary["compare"] = load_compare(compare) if long else None
    # CPU time of this process: on a shared machine the wall-clock total overstates the demo's cost.
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    rc = resource.getrusage(resource.RUSAGE_CHILDREN)  # the training processes (reaped)
    summary["cpu_seconds"] = ru.ru_utime + ru.ru_stime + rc.ru_utime + rc.ru_stime
    summary["threads"] = torch.get_num_threads()
    write_json(out / "demo.json", summary)
    atomic_write_text(
        out / "report.md",
        report_markdown(summary, results, labels, format_metrics_table, test_area, room),
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


def train_parallel(configs: dict, progress: bool) -> dict[str, tuple[Path, float, float]]:
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
