"""Whole-cloud prediction with the real ResGCN-28: streaming vs all blocks at once, memory growth
with scan size, and the two exact kNN paths.

    python benchmarks/predict.py                        # default: a few minutes (see below)
    python benchmarks/predict.py --points 150000 --knn-compare   # new kNN default vs exact32
    python benchmarks/predict.py --points 1000000 --sizes ""     # the old, hours-long run
    python benchmarks/predict.py --huge 20000000 --bound 2.5GB   # bounded-memory check only

The scan is generated (a building floor: rooms with floor, ceiling, walls and furniture boxes,
~2,000 points per m² of floor, colours per surface) and saved once; each run happens in a fresh
subprocess so its peak RSS (`ru_maxrss`) is its own. The model is ResGCN-28 (random weights, eval
mode, seed 0) unless `--model` says otherwise.

- **baseline** — the whole-room path before streaming: `room_to_blocks(..., cover_all=True)`
  makes every block of the cloud at once, then batched `torch.no_grad` inference, voting and one
  kd-tree over the whole cloud for unscored points (the code of `predict_room` until streaming,
  kept below verbatim).
- **streaming** — `pointseg.engine.predict.predict_cloud`: 10 m tiles, lazy blocks,
  `torch.inference_mode`, blocks made in the main thread (`workers=0`, the CPU default of
  `pointseg predict`), chunked finishing.

Default run (a few minutes on 2 cores):
1. both paths in full on a `--points` (150 k) scan: time split into blocking, kNN (every
   `DilatedKnnGraph` call), the rest of the network, voting and finishing; peak RSS; agreement;
2. peak memory against scan size (`--sizes`, 150 k and 600 k points): both paths again, with the
   real model scoring the first `--growth-batches` batches and the rest of the blocks given
   constant logits (every block is still made, voted and finished). The network's activation
   peak is reached in its first batch and the pipeline's memory is what grows with the scan, so
   the peaks are those of full runs; the times are not, and are not reported.

`--knn-compare` runs only the streaming path, twice on the same scan, model, blocks and seeds:
once with `--knn bf16` (or the path `--knn` names: bf16 candidates + exact fp32 re-rank) and once
with `--knn exact32`, interleaved with a repeat when `--repeats 2`; it reports
`throughput_speedup` (that path over exact32) and `agreement` (identical predictions).

`--huge N` runs only the streaming path on a generated N-point scan under `--bound` with a small
model (default `resgcn4_tiny_static`: the check is about memory, not about the network) and the
tile and batch sizes `plan_memory` chooses for that budget; it fails (exit 1) when the peak RSS
exceeds it.

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------- the scan
def make_scan(n: int, seed: int = 0, density: float = 2000.0) -> tuple[np.ndarray, np.ndarray]:
    """A building floor of `n` points (float32 xyz in metres, uint8 rgb), made in chunks.

    Floor area n / density m² (2:1.5 aspect), rooms of 5 m × 6 m with 3 m walls, a ceiling at 3 m
    and furniture boxes. Points are split over surfaces by area, with 5 mm noise.
    """
    rng = np.random.default_rng(seed)
    area = n / density
    w = math.sqrt(area * 4 / 3)
    ln = area / w
    rx, ry = max(1, round(w / 5)), max(1, round(ln / 6))
    boxes = rng.uniform([0, 0, 0.4], [w - 1.5, ln - 1.5, 1.2], size=(max(4, int(area / 8)), 3))
    sizes = rng.uniform([0.5, 0.5, 0.4], [1.5, 1.5, 1.2], size=(len(boxes), 3))
    # surface areas: floor, ceiling, x-walls, y-walls, box tops
    wall_x, wall_y = (rx + 1) * ln * 3.0, (ry + 1) * w * 3.0
    tops = float((sizes[:, 0] * sizes[:, 1]).sum())
    weights = np.array([area, area, wall_x, wall_y, tops])
    kind = rng.choice(5, size=n, p=weights / weights.sum()).astype(np.int8)
    xyz = np.empty((n, 3), np.float32)
    rgb = np.empty((n, 3), np.uint8)
    base = np.array(
        [[120, 110, 100], [230, 230, 225], [200, 195, 180], [190, 190, 200], [140, 90, 50]]
    )
    chunk = 1 << 21
    for s in range(0, n, chunk):
        k = kind[s : s + chunk]
        m = len(k)
        p = rng.uniform([0, 0, 0], [w, ln, 3.0], size=(m, 3))
        p[k == 0, 2] = 0.0
        p[k == 1, 2] = 3.0
        sel = k == 2
        p[sel, 0] = rng.integers(0, rx + 1, sel.sum()) * (w / rx)
        sel = k == 3
        p[sel, 1] = rng.integers(0, ry + 1, sel.sum()) * (ln / ry)
        sel = np.flatnonzero(k == 4)
        b = rng.integers(0, len(boxes), sel.size)
        p[sel, 0] = boxes[b, 0] + rng.random(sel.size) * sizes[b, 0]
        p[sel, 1] = boxes[b, 1] + rng.random(sel.size) * sizes[b, 1]
        p[sel, 2] = boxes[b, 2]
        p += rng.normal(0, 0.005, size=p.shape)
        xyz[s : s + m] = p
        rgb[s : s + m] = np.clip(base[k] + rng.normal(0, 12, size=(m, 3)), 0, 255)
    return xyz, rgb


# ---------------------------------------------------------------------------- one path
def _time_knn() -> dict[str, float]:
    """Wrap every DilatedKnnGraph call with a timer (the benchmark adapts to the library)."""
    from pointseg.graph import dilation

    acc = {"knn": 0.0}
    forward = dilation.DilatedKnnGraph.forward

    def timed(self, x):
        t = time.perf_counter()
        out = forward(self, x)
        acc["knn"] += time.perf_counter() - t
        return out

    dilation.DilatedKnnGraph.forward = timed
    return acc


class _FirstBatches:
    """The real model for the first `limit` batches, then constant logits (memory-growth runs)."""

    def __new__(cls, model, limit: int, num_classes: int):
        import torch

        class FirstBatches(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model, self.left = model, limit

            def forward(self, x):
                if self.left > 0:
                    self.left -= 1
                    return self.model(x)
                return x.new_zeros(x.shape[0], x.shape[1], num_classes)

        return FirstBatches()


def baseline_predict_room(model, xyz, rgb, *, num_classes, num_point, block_size, stride,
                          min_points, batch_size, seed):  # fmt: skip
    """`pointseg.engine.evaluate.predict_room` before streaming (verbatim but for the timers)."""
    import torch

    from pointseg.data.blocks import nearest_covered_index, room_to_blocks

    times = {"blocking": 0.0, "network": 0.0, "voting": 0.0, "finishing": 0.0}
    t = time.perf_counter()
    n = int(xyz.shape[0])
    label = np.zeros(n, dtype=np.uint8)
    model.eval()
    blocks = room_to_blocks(
        xyz, rgb, label, block_size=block_size, stride=stride, num_point=num_point,
        min_points=min_points, rng=np.random.default_rng(seed), cover_all=True,
    )  # fmt: skip
    data, index = blocks.data, blocks.index
    nb = len(data)
    prob_sum = torch.zeros((n, num_classes), dtype=torch.float32)
    votes = torch.zeros(n, dtype=torch.int32)
    times["blocking"] += time.perf_counter() - t
    with torch.no_grad():
        for s in range(0, nb, batch_size):
            t0 = time.perf_counter()
            x = torch.as_tensor(np.ascontiguousarray(data[s : s + batch_size]), dtype=torch.float32)
            logits = model(x)
            p = torch.softmax(logits.float(), dim=-1).cpu().reshape(-1, num_classes)
            t1 = time.perf_counter()
            idx = torch.as_tensor(
                np.ascontiguousarray(index[s : s + batch_size]), dtype=torch.int64
            ).reshape(-1)
            prob_sum.index_add_(0, idx, p)
            votes.index_add_(0, idx, torch.ones_like(idx, dtype=torch.int32))
            times["network"] += t1 - t0
            times["voting"] += time.perf_counter() - t1
    t = time.perf_counter()
    scored = votes > 0
    prob_sum[scored] /= votes[scored, None].to(torch.float32)
    prob = prob_sum.numpy()
    scored_np = scored.numpy()
    if (~scored_np).any():
        prob = prob[nearest_covered_index(xyz, scored_np)]
    pred = prob.argmax(axis=1).astype(np.int64)
    times["finishing"] += time.perf_counter() - t
    return pred, nb, times


def run_path(args: argparse.Namespace) -> dict:
    import torch

    from pointseg.models import DeepGCN, get_config

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.knn:
        from pointseg.graph.knn import set_knn_mode

        set_knn_mode(args.knn, force=True)
    knn = _time_knn()
    if args.scan:
        with np.load(args.scan) as z:
            xyz, rgb = z["xyz"], z["rgb"]
    else:
        xyz, rgb = make_scan(args.huge, seed=args.seed)
    torch.manual_seed(0)
    if args.model == "pointwise":
        # No graph, no kNN: a per-point MLP, so only the pipelines (blocking, voting, finishing,
        # their memory) differ between the two paths and the run takes minutes, not hours.
        cfg = get_config("resgcn4_tiny_static").replace(channels=1, num_blocks=1, fusion_channels=1,
                                                          head_channels=(1,))  # fmt: skip
        model = torch.nn.Sequential(
            torch.nn.Linear(9, 32), torch.nn.ReLU(), torch.nn.Linear(32, cfg.num_classes)
        ).eval()
    else:
        cfg = get_config(args.model)
        model = DeepGCN(cfg).eval()
    if args.max_batches:
        model = _FirstBatches(model, args.max_batches, cfg.num_classes).eval()
    kw = dict(num_classes=cfg.num_classes, num_point=args.num_point, block_size=1.0,
              stride=args.stride, min_points=100)  # fmt: skip
    t0 = time.perf_counter()
    if args.path == "baseline":
        pred, nb, times = baseline_predict_room(
            model, xyz, rgb, batch_size=args.batch_size or 8, seed=0, **kw
        )
        tiles = 1
        plan = {"batch_size": args.batch_size or 8}
    else:
        from pointseg.engine.predict import BlockSettings, _parse_bytes, plan_memory, predict_cloud

        budget = _parse_bytes(args.bound) if args.huge else None
        settings = BlockSettings(num_point=args.num_point)
        mp = plan_memory(budget, xyz, num_classes=cfg.num_classes, config=cfg.to_dict(),
                         settings=settings, stride=args.stride,
                         batch_size=args.batch_size or (None if budget else 8),
                         tile_size=None if budget else 10.0, workers=0)  # fmt: skip
        plan = {"batch_size": mp.batch_size, "tile_size": mp.tile_size, "note": mp.note}
        res = predict_cloud(model, xyz, rgb, batch_size=mp.batch_size, tile_size=mp.tile_size,
                            workers=0, seed=0, keep_prob=False, **kw)  # fmt: skip
        pred, nb, times, tiles = res.pred, res.num_blocks, res.times, res.num_tiles
    seconds = time.perf_counter() - t0
    times = dict(times)
    times["knn"] = knn["knn"]
    times["network_other"] = times["network"] - knn["knn"]
    np.save(args.pred_out, np.asarray(pred, dtype=np.uint8))
    return {
        "path": args.path,
        "points": int(len(xyz)),
        "blocks": int(nb),
        "tiles": int(tiles),
        "seconds": seconds,
        "points_per_s": len(xyz) / seconds,
        "times": times,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "knn_mode": _knn_mode(),
        **plan,
    }


def _knn_mode() -> str:
    import importlib

    return importlib.import_module("pointseg.graph.knn").get_knn_mode()


# ---------------------------------------------------------------------------- driver
def _spawn(args: argparse.Namespace, path: str, scan: str | None, pred_out: str,
           knn: str | None = None, max_batches: int = 0) -> dict:  # fmt: skip
    cmd = [sys.executable, __file__, "--_path", path, "--model", args.model,
           "--stride", str(args.stride), "--num-point", str(args.num_point),
           "--pred-out", pred_out, "--seed", str(args.seed)]  # fmt: skip
    if knn:
        cmd += ["--knn", knn]
    if max_batches:
        cmd += ["--_max-batches", str(max_batches)]
    if scan:
        cmd += ["--_scan", scan]
    if args.huge:
        cmd += ["--huge", str(args.huge), "--bound", args.bound]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"benchmark child failed (exit {out.returncode}): {' '.join(cmd)}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt_times(r: dict) -> str:
    t = r["times"]
    return (f"blocking {t['blocking']:.1f} s, kNN {t['knn']:.1f} s, network (other) "
            f"{t['network_other']:.1f} s, voting {t['voting']:.2f} s, finishing {t['finishing']:.2f} s")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--points", type=int, default=150_000, help="scan of the full comparison (0: skip it)"
    )
    ap.add_argument(
        "--sizes",
        default="150000,600000",
        help="scan sizes of the memory-growth runs (comma-separated; '' = none)",
    )
    ap.add_argument(
        "--growth-batches",
        type=int,
        default=2,
        help="memory-growth runs: batches scored by the real model",
    )
    ap.add_argument(
        "--knn",
        choices=["auto", "exact32", "bf16"],
        default=None,
        help="kNN path of every run (default: the library's default)",
    )
    ap.add_argument(
        "--knn-compare",
        action="store_true",
        help="only compare the kNN default with --knn exact32 (streaming path)",
    )
    ap.add_argument("--repeats", type=int, default=1, help="--knn-compare: runs per path")
    ap.add_argument(
        "--model", default=None, help="preset (default resgcn28; --huge: resgcn4_tiny_static)"
    )
    ap.add_argument("--stride", type=float, default=1.0)
    ap.add_argument("--num-point", type=int, default=4096)
    ap.add_argument(
        "--batch-size", type=int, default=None, help="both paths (default: each one's default)"
    )
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--huge", type=int, default=None, help="bounded-memory check on an N-point scan"
    )
    ap.add_argument("--bound", default="2.5GB", help="peak RSS bound of --huge")
    ap.add_argument("--_path", dest="path", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_scan", dest="scan", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--pred-out", default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--_max-batches", dest="max_batches", type=int, default=0, help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    args.model = args.model or ("resgcn4_tiny_static" if args.huge else "resgcn28")
    if args.path:
        print(json.dumps(run_path(args)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        if args.huge:
            r = _spawn(args, "stream", None, f"{tmp}/pred.npy")
            from pointseg.engine.predict import _parse_bytes

            bound_mb = _parse_bytes(args.bound) / 2**20
            ok = r["peak_rss_mb"] <= bound_mb
            print(f"bounded memory: {r['points']:,} points, {args.model}, {r['blocks']:,} blocks in "
                  f"{r['tiles']} tiles ({r['note']})")  # fmt: skip
            print(f"  {r['seconds']:.0f} s ({r['points_per_s']:,.0f} points/s); {_fmt_times(r)}")
            print(f"  peak RSS {r['peak_rss_mb']:,.0f} MiB <= bound {bound_mb:,.0f} MiB: {ok}")
            print(json.dumps({"benchmark": "predict-bounded-memory", "points": r["points"],
                              "model": args.model, "peak_rss_mb": round(r["peak_rss_mb"], 1),
                              "bound_mb": round(bound_mb, 1), "within_bound": ok,
                              "seconds": round(r["seconds"], 1), "tile_size": r["tile_size"],
                              "batch_size": r["batch_size"]}))  # fmt: skip
            sys.exit(0 if ok else 1)

        if args.knn_compare:
            knn_compare(args, tmp)
            return
        if not args.points:  # memory growth only
            growth = memory_growth(args, tmp)
            print(json.dumps({"benchmark": "predict-memory-growth", "model": args.model,
                              "growth_batches": args.growth_batches, "memory_growth": growth}))  # fmt: skip
            return
        t = time.perf_counter()
        xyz, rgb = make_scan(args.points, seed=args.seed)
        scan = f"{tmp}/scan.npz"
        np.savez(scan, xyz=xyz, rgb=rgb)
        ext = xyz.max(0) - xyz.min(0)
        print(f"scan: {len(xyz):,} points, {ext[0]:.1f} m x {ext[1]:.1f} m x {ext[2]:.1f} m "
              f"(generated in {time.perf_counter() - t:.1f} s); model {args.model}, stride {args.stride} m, "
              f"{args.num_point} points per block; CPU threads {args.threads or 'default'}")  # fmt: skip
        base = _spawn(args, "baseline", scan, f"{tmp}/base.npy", knn=args.knn)
        stream = _spawn(args, "stream", scan, f"{tmp}/stream.npy", knn=args.knn)
        agree = float(np.mean(np.load(f"{tmp}/base.npy") == np.load(f"{tmp}/stream.npy")))
        growth = memory_growth(args, tmp)
    for r, name in (
        (base, "room_to_blocks + predict_room (old)"),
        (stream, "streaming predict_cloud"),
    ):
        print(f"{name}: {r['seconds']:.1f} s, {r['points_per_s']:,.0f} points/s, peak RSS "
              f"{r['peak_rss_mb']:,.0f} MiB, {r['blocks']} blocks, {r['tiles']} tiles, batch {r['batch_size']}")  # fmt: skip
        print(f"  {_fmt_times(r)}")
    speedup = base["seconds"] / stream["seconds"]
    ratio = stream["peak_rss_mb"] / base["peak_rss_mb"]
    print(f"speedup {speedup:.2f}x, memory ratio {ratio:.2f}; "
          f"predictions agree on {100 * agree:.3f}% of points (kNN path: {stream['knn_mode']})")  # fmt: skip
    if growth:
        print(f"\npeak RSS (MiB) against scan size, real model on the first {args.growth_batches} "
              "batches, every block made, voted and finished:")  # fmt: skip
        print(f"{'points':>10} {'blocks':>7} {'whole-room':>11} {'streaming':>10}")
        for g in growth:
            print(f"{g['points']:>10,} {g['blocks']:>7} {g['baseline_peak_mb']:>11,.0f} "
                  f"{g['stream_peak_mb']:>10,.0f}")  # fmt: skip
        if len(growth) > 1:
            a, b = growth[0], growth[-1]
            print(f"{a['points']:,} -> {b['points']:,} points ({b['points'] / a['points']:.1f}x): "
                  f"whole-room peak x{b['baseline_peak_mb'] / a['baseline_peak_mb']:.2f}, "
                  f"streaming peak x{b['stream_peak_mb'] / a['stream_peak_mb']:.2f}")  # fmt: skip
    print(json.dumps({
        "benchmark": "predict", "points": base["points"], "model": args.model, "stride": args.stride,
        "speedup": round(speedup, 3), "memory_ratio": round(ratio, 3),
        "baseline_s": round(base["seconds"], 2), "stream_s": round(stream["seconds"], 2),
        "baseline_peak_mb": round(base["peak_rss_mb"], 1), "stream_peak_mb": round(stream["peak_rss_mb"], 1),
        "stream_points_per_s": round(stream["points_per_s"], 1),
        "baseline_batch": base["batch_size"], "stream_batch": stream["batch_size"],
        "stream_times": {k: round(v, 2) for k, v in stream["times"].items()},
        "baseline_times": {k: round(v, 2) for k, v in base["times"].items()},
        "agreement": agree, "knn_mode": stream["knn_mode"], "memory_growth": growth,
    }))  # fmt: skip


def memory_growth(args: argparse.Namespace, tmp: str) -> list[dict]:
    """Peak RSS of both paths per scan size (the real model on the first batches only)."""
    sizes = [int(float(v)) for v in args.sizes.split(",") if v.strip()]
    rows = []
    for n in sizes:
        xyz, rgb = make_scan(n, seed=args.seed)
        scan = f"{tmp}/scan_{n}.npz"
        np.savez(scan, xyz=xyz, rgb=rgb)
        del xyz, rgb
        r = {"points": n}
        for path in ("baseline", "stream"):
            res = _spawn(args, path, scan, f"{tmp}/g.npy", knn=args.knn,
                         max_batches=args.growth_batches)  # fmt: skip
            r[f"{path}_peak_mb"] = round(res["peak_rss_mb"], 1)
            r["blocks"] = res["blocks"]
        print(f"  memory growth: {n:,} points, {r['blocks']} blocks: whole-room "
              f"{r['baseline_peak_mb']:,.0f} MiB, streaming {r['stream_peak_mb']:,.0f} MiB",
              flush=True)  # fmt: skip
        rows.append(r)
    return rows


def knn_compare(args: argparse.Namespace, tmp: str) -> None:
    """Streaming prediction with --knn bf16 (or --knn) vs exact32: same scan, model, blocks, seeds."""
    t = time.perf_counter()
    xyz, rgb = make_scan(args.points, seed=args.seed)
    scan = f"{tmp}/scan.npz"
    np.savez(scan, xyz=xyz, rgb=rgb)
    print(f"scan: {len(xyz):,} points (generated in {time.perf_counter() - t:.1f} s); model "
          f"{args.model}, stride {args.stride} m, {args.num_point} points per block; streaming "
          f"path, --knn {args.knn or 'bf16'} vs exact32, {args.repeats} run(s) each, interleaved",
          flush=True)  # fmt: skip
    runs: dict[str, list[dict]] = {"default": [], "exact32": []}
    for rep in range(args.repeats):
        for name, knn in (("default", args.knn or "bf16"), ("exact32", "exact32")):
            r = _spawn(args, "stream", scan, f"{tmp}/{name}.npy", knn=knn)
            runs[name].append(r)
            print(f"  {name:<8} run {rep + 1}: {r['seconds']:.1f} s ({r['points_per_s']:,.0f} "
                  f"points/s), kNN {r['times']['knn']:.1f} s, network other "
                  f"{r['times']['network_other']:.1f} s, peak RSS {r['peak_rss_mb']:,.0f} MiB "
                  f"[{r['knn_mode']}]", flush=True)  # fmt: skip
    agree = float(np.mean(np.load(f"{tmp}/default.npy") == np.load(f"{tmp}/exact32.npy")))
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    speed = best["exact32"]["seconds"] / best["default"]["seconds"]
    knn_speed = best["exact32"]["times"]["knn"] / best["default"]["times"]["knn"]
    print(f"throughput: default {best['default']['points_per_s']:,.0f} points/s, exact32 "
          f"{best['exact32']['points_per_s']:,.0f} points/s: {speed:.2f}x (kNN alone "
          f"{knn_speed:.2f}x); predictions identical on {100 * agree:.3f}% of points")  # fmt: skip
    print(json.dumps({
        "benchmark": "predict-knn-compare", "points": best["default"]["points"],
        "model": args.model, "blocks": best["default"]["blocks"],
        "default_knn": best["default"]["knn_mode"],
        "throughput_speedup": round(speed, 3), "knn_speedup": round(knn_speed, 3),
        "agreement": agree,
        "default_s": round(best["default"]["seconds"], 2),
        "exact32_s": round(best["exact32"]["seconds"], 2),
        "default_knn_s": round(best["default"]["times"]["knn"], 2),
        "exact32_knn_s": round(best["exact32"]["times"]["knn"], 2),
        "default_peak_mb": round(best["default"]["peak_rss_mb"], 1),
        "exact32_peak_mb": round(best["exact32"]["peak_rss_mb"], 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
