"""What limits `pointseg demo`: ResGCN validation mIoU against training time, more data vs more steps.

Trains the demo's ResGCN (model, optimiser and schedule from `DEMO_DEFAULTS` or `--config`) on
synthetic rooms at 1×, 2× and 4× the demo's training data (more rooms per area; room i of an
area is the same room at every scale, so the 1× rooms are a subset of the 2× rooms) with the
demo's optimiser-step budget, plus one run on 1× data with 2× the steps. Each run validates after
every epoch on rooms held out from its own training areas (the demo's protocol; never the test
area). Reading the result:

- if 2×/4× data at the same steps beats 1× data, the demo is data-starved at its budget;
- if 1× data with 2× steps beats 1× data, it is step-starved (more time or cheaper steps help);
- if neither helps, look at the recipe (learning rate, schedule, loss, augmentation).

Runs go two at a time (one process and one torch thread each, as the demo trains its pair).
Writes `<out>/learning_curve.png` and `<out>/learning_curve.md`; the last line printed is one
JSON object. Times are per-run training seconds (a loaded machine stretches them uniformly).

    .venv/bin/python scripts/demo_learning_curve.py --out reports/demo_curve
    .venv/bin/python scripts/demo_learning_curve.py --scales 1 2 --steps-factors 1   # cheaper
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def make_data(work: Path, cfg: dict, scale: int) -> tuple[Path, Path]:
    """Rooms, cache and training blocks with `scale` × the demo's rooms per training area."""
    from pointseg.data.blocks import make_s3dis_blocks
    from pointseg.data.s3dis import prepare_s3dis
    from pointseg.data.synthetic import synth_s3dis

    s, b = cfg["synth"], cfg["blocks"]
    root = work / f"data_x{scale}"
    if (root / "blocks" / "train" / "room_filelist.txt").is_file():
        return root / "blocks", root / "cache"
    test = int(cfg["test_area"])
    train_areas = [a for a in range(1, s["areas"] + 1) if a != test]
    synth_s3dis(root / "raw", areas=train_areas, rooms_per_area=s["rooms_per_area"] * scale,
                seed=cfg["seed"], density=s["density"], progress=False)  # fmt: skip
    # The test area stays the demo's (only named so the training code can exclude it).
    synth_s3dis(root / "raw", areas=[test], rooms_per_area=s["rooms_per_area"], seed=cfg["seed"],
                density=s["density"], progress=False)  # fmt: skip
    if not prepare_s3dis(root / "raw", root / "cache", progress=False).ok:
        raise RuntimeError(f"preparing {root / 'raw'} failed")
    make_s3dis_blocks(root / "cache", root / "blocks", split="train", num_point=b["num_point"],
                      block_size=b["block_size"], stride=b["stride"], min_points=b["min_points"],
                      seed=cfg["seed"], overwrite=True, progress=False)  # fmt: skip
    return root / "blocks", root / "cache"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="reports/demo_curve")
    p.add_argument(
        "--config", help="demo YAML merged over DEMO_DEFAULTS (as `pointseg demo --config`)"
    )
    p.add_argument("--model", help="label of the model in the demo config (default: the ResGCN)")
    p.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4], help="data multiples")
    p.add_argument("--steps-factors", type=float, nargs="*", default=[2.0],
                   help="extra runs on 1× data with this multiple of the demo's steps")  # fmt: skip
    p.add_argument("--jobs", type=int, default=2, help="runs at the same time (1 thread each)")
    p.add_argument("--demo-run", metavar="RUN_DIR",
                   help="use this finished run (e.g. reports/demo/runs/resgcn28) as the '1x data, "
                        "1x steps' point instead of training it again")  # fmt: skip
    args = p.parse_args(argv)

    import torch

    from pointseg.demo import demo_config, train_parallel
    from pointseg.engine.plots import _pyplot
    from pointseg.engine.train import resolve_config
    from pointseg.io import atomic_write, atomic_write_text

    cfg = demo_config(config=args.config)
    label = args.model or next(k for k, v in cfg["models"].items() if "res" in v["name"])
    spec = dict(cfg["models"][label])
    name = spec.pop("name")
    out = Path(args.out)
    work = out / "work"
    epochs = int(cfg["train"]["epochs"])

    t0 = time.perf_counter()
    configs = {}
    for scale in args.scales:
        blocks, cache = make_data(work, cfg, scale)
        # Same optimiser steps as the demo: `scale` × the blocks per epoch, epochs / scale.
        runs = [(f"{scale}x data, 1x steps", epochs / scale)]
        if scale == 1 and args.demo_run:
            runs = []
        if scale == 1:
            runs += [(f"1x data, {f:g}x steps", epochs * f) for f in args.steps_factors]
        for run_label, ep in runs:
            if abs(ep - round(ep)) > 1e-9 or ep < 1:
                raise SystemExit(
                    f"demo epochs {epochs} do not split into {run_label} ({ep} epochs)"
                )
            configs[run_label] = resolve_config("s3dis", base={
                **cfg["train"], "epochs": int(round(ep)), "model": name, "model_args": spec,
                "blocks": str(blocks), "cache": str(cache), "test_area": cfg["test_area"],
                "out_dir": str(work / "runs"), "run": run_label.replace(" ", "_").replace(",", ""),
                "seed": cfg["seed"], "threads": 1, "tensorboard": False, "progress": False,
            })  # fmt: skip
    data_s = time.perf_counter() - t0
    print(
        f"data ready in {data_s:.0f} s; {len(configs)} runs, {args.jobs} at a time", file=sys.stderr
    )

    items = list(configs.items())
    results = {}
    if args.demo_run:
        results["1x data, 1x steps"] = (Path(args.demo_run), None, None)
    for i in range(0, len(items), args.jobs):
        results.update(train_parallel(dict(items[i : i + args.jobs]), progress=True))

    rows, curves = [], {}
    for run_label, (run, _wall, _cpu) in results.items():
        last = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
        hist = last["history"]
        t = 0.0
        pts = []
        for h in hist:
            t += h["time_s"]
            pts.append((t, 100 * h["val_miou"]))
        curves[run_label] = pts
        rows.append({
            "run": run_label, "train_blocks": last["meta"]["data"]["train_blocks"] if "meta" in last
            else None, "epochs": len(hist), "steps": last["step"], "train_s": round(t, 1),
            "final_val_miou": round(pts[-1][1], 2), "best_val_miou": round(max(v for _, v in pts), 2),
            "final_train_loss": round(hist[-1]["train_loss"], 4),
        })  # fmt: skip

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run_label, pts in curves.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=4, label=run_label)
    ax.set_xlabel("training time of the run (s, one thread)")
    ax.set_ylabel("validation mIoU % (block-sampled)")
    ax.set_title(f"{label}: more data vs more steps")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "learning_curve.png", suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    lines = [f"# {label}: validation mIoU vs training time", "",
             "| run | train blocks | epochs | steps | train s | final val mIoU % | best val mIoU % | final train loss |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['run']} | {r['train_blocks']} | {r['epochs']} | {r['steps']} | {r['train_s']:.0f} | "
                     f"{r['final_val_miou']:.1f} | {r['best_val_miou']:.1f} | {r['final_train_loss']:.3f} |")  # fmt: skip
    lines += ["", "Per-epoch points (cumulative training s, val mIoU %):", ""]
    for run_label, pts in curves.items():
        lines.append(f"- {run_label}: " + ", ".join(f"({t:.0f}, {v:.1f})" for t, v in pts))
    lines += ["", "![learning curve](learning_curve.png)", ""]
    atomic_write_text(out / "learning_curve.md", "\n".join(lines))
    print("\n".join(lines[: 3 + len(rows)]))
    print(json.dumps({"model": label, "runs": rows, "wall_s": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
