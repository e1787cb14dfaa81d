"""Raw S3DIS -> room cache: our parser vs the PointNet recipe, measured in the same run.

Baseline (PointNet's `collect_indoor3d_data.py`): per room, `np.loadtxt` every annotation file,
append the label column, concatenate, `np.save`. Ours: `prepare_s3dis` (whole files through the
native C parser `pointseg._native._parse` when it is built, else bytes-level check + pandas' C
reader; line-by-line repair only for files with bad bytes; atomic npz + index), in one process
and with `--workers` processes. Both are warmed up once (imports, page cache) and timed as the
best of `--repeat` runs. The parser tier in use is printed first. Parse-only speeds of the three
readers (native C, pandas, np.loadtxt) on the same in-memory file bytes are reported too. Also
reports block generation (`room_to_blocks`) in points/s.

    python benchmarks/prepare.py [--raw ../shared/data/s3dis_raw] [--repeat 3] [--workers 2]

The last line is JSON: {"speedup", "speedup_parallel", "baseline_mb_s", "ours_mb_s",
"parser_tier", "parse_native_mb_s", "parse_pandas_mb_s", "parse_loadtxt_mb_s", ...}.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pointseg.data import s3dis  # noqa: E402
from pointseg.data.s3dis import parse as s3dis_parse  # noqa: E402

DEFAULT_RAW = ROOT / ".." / "shared" / "data" / "s3dis_raw"


def pointnet_recipe(area_root: Path, out: Path) -> int:
    """PointNet's collect_indoor3d_data: loadtxt per file, label column, concatenate, np.save."""
    n = 0
    for area in sorted(p for p in area_root.iterdir() if p.is_dir()):
        for room in sorted(p for p in area.iterdir() if p.is_dir()):
            parts = []
            for f in sorted((room / "Annotations").glob("*.txt")):
                points = np.loadtxt(f)
                label = np.full((points.shape[0], 1), s3dis.class_name_to_id(f.stem.split("_")[0]))
                parts.append(np.concatenate([points, label], axis=1))
            data = np.concatenate(parts, axis=0)
            np.save(out / f"{area.name}_{room.name}.npy", data)
            n += data.shape[0]
    return n


def loadtxt_parse(buf: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The reference reader: np.loadtxt, then the cache dtypes."""
    values = np.loadtxt(io.BytesIO(buf), ndmin=2)
    return values[:, :3].astype(np.float32), values[:, 3:].astype(np.uint8)


def best_of(fn, repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", default=str(DEFAULT_RAW))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    raw = Path(args.raw)
    if not raw.is_dir():
        print(f"skipped: no raw S3DIS rooms at {raw}")
        print(json.dumps({"skipped": True}))
        return 0
    area_root = s3dis.find_area_root(raw)
    files = sorted(area_root.glob("Area_*/*/Annotations/*.txt"))
    mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"{len(files)} annotation files, {mb:.1f} MB, in {area_root}")
    tier = s3dis.PARSER_TIER
    if tier == "native":
        why = "pointseg._native._parse"
    elif os.environ.get("POINTSEG_NO_NATIVE", "") not in ("", "0"):
        why = "native parser turned off by POINTSEG_NO_NATIVE"
    else:
        why = "native parser not built: `python setup.py build_ext --inplace`"
    print(f"parser tier: {tier} ({why})")

    with tempfile.TemporaryDirectory(prefix="pointseg-bench-prepare-") as tmp:
        tmp = Path(tmp)
        (tmp / "base").mkdir()
        ours = tmp / "ours"

        # Warm-up: imports (pandas), page cache, and the reference arrays for the equality check.
        n_base = pointnet_recipe(area_root, tmp / "base")
        result = s3dis.prepare_s3dis(area_root, ours, workers=1, force=True, progress=False)
        assert result.ok, result.failed
        n_ours = sum(e["points"] for e in result.done)
        identical = n_base == n_ours
        for e in s3dis.list_rooms(ours):
            ref = np.load(tmp / "base" / f"{e['area']}_{e['room']}.npy")
            got = s3dis.load_room(e["path"])
            # Same file order (sorted names) in both for these rooms; compare values exactly.
            identical &= np.array_equal(got["xyz"], ref[:, :3].astype(np.float32))
            identical &= np.array_equal(got["rgb"], ref[:, 3:6].astype(np.uint8))
            identical &= np.array_equal(got["label"], ref[:, 6].astype(np.uint8))
        print(f"points: {n_ours:,}; identical to the np.loadtxt recipe: {identical}")

        rooms = [area_root / e["area"] / e["room"] for e in s3dis.list_rooms(ours)]
        methods = {
            "base": lambda: pointnet_recipe(area_root, tmp / "base"),
            "ours": lambda: s3dis.prepare_s3dis(
                area_root, ours, workers=1, force=True, progress=False
            ),
            "parallel": lambda: s3dis.prepare_s3dis(
                area_root, ours, workers=args.workers, force=True, progress=False
            ),
            "parse": lambda: [s3dis.parse_room(r) for r in rooms],
            "resume": lambda: s3dis.prepare_s3dis(area_root, ours, progress=False),
        }
        # Interleaved repeats: the machine is shared, so every method sees the same load; the
        # best wall time and the best CPU time (this process only) of each are kept.
        wall = dict.fromkeys(methods, float("inf"))
        cpu = dict.fromkeys(methods, float("inf"))
        for _ in range(args.repeat):
            for name, fn in methods.items():
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                wall[name] = min(wall[name], time.perf_counter() - t0)
                cpu[name] = min(cpu[name], time.process_time() - c0)

        rows = [
            ("np.loadtxt + concatenate + np.save (PointNet)", "base"),
            ("ours, prepare_s3dis, 1 process", "ours"),
            (f"ours, prepare_s3dis, {args.workers} worker processes", "parallel"),
            ("ours, parse_room only (no write), 1 process", "parse"),
        ]
        print(
            f"{'method':<52} {'wall s':>7} {'MB/s':>7} {'x':>6} {'cpu s':>7} {'MB/s':>7} {'x':>6}"
        )
        for label, key in rows:
            w, c = wall[key], cpu[key]
            cpu_cols = (
                "    (workers' CPU not counted)"
                if key == "parallel"
                else (f"{c:>7.3f} {mb / c:>7.1f} {cpu['base'] / c:>6.2f}")
            )
            print(f"{label:<52} {w:>7.3f} {mb / w:>7.1f} {wall['base'] / w:>6.2f} {cpu_cols}")
        print(f"resume (all rooms verified by size + sha256, skipped): {wall['resume']:.3f} s")
        t_base, t_ours, t_par, t_parse = wall["base"], wall["ours"], wall["parallel"], wall["parse"]

        # A corrupt file like the real ones (one NUL byte in place of a separator, mid-file):
        # only that line leaves the C reader, so the speed should stay close to a clean file's.
        biggest = max(files, key=lambda f: f.stat().st_size)
        clean = biggest.read_bytes()
        mid = clean.index(b" ", clean.index(b"\n", len(clean) // 2) + 1)
        corrupt = tmp / biggest.name
        corrupt.write_bytes(clean[:mid] + b"\x00" + clean[mid + 1 :])
        _, (_, _, issues) = best_of(lambda: s3dis.parse_annotation_file(corrupt), 1)
        assert len(issues) == 1 and issues[0].action.startswith("repaired"), issues
        t_clean, _ = best_of(lambda: s3dis.parse_annotation_file(biggest), args.repeat)
        t_bad, _ = best_of(lambda: s3dis.parse_annotation_file(corrupt), args.repeat)
        fmb = len(clean) / 1e6
        print(
            f"{biggest.name} ({fmb:.1f} MB): clean {fmb / t_clean:.1f} MB/s; with one NUL byte "
            f"(repaired, reported) {fmb / t_bad:.1f} MB/s"
        )

        # Parse only, the same in-memory bytes for every reader: the tiers side by side.
        bufs = [f.read_bytes() for f in files]
        readers = {"pandas": s3dis_parse._pandas_fast_parse, "loadtxt": loadtxt_parse}
        if s3dis_parse._native_parse_mod is not None:
            readers = {"native": s3dis_parse._native_fast_parse, **readers}
        parse_mb_s = {}
        for key, reader in readers.items():
            assert all(reader(b) is not None for b in bufs), key  # the real files are clean
            t_reader, _ = best_of(lambda reader=reader: [reader(b) for b in bufs], args.repeat)
            parse_mb_s[key] = mb / t_reader
        print(
            "parse only (bytes in memory -> xyz float32, rgb uint8): "
            + ", ".join(
                f"{k} {v:.1f} MB/s ({v / parse_mb_s['loadtxt']:.2f}x loadtxt)"
                for k, v in parse_mb_s.items()
            )
        )

        stats = {
            "mb": round(mb, 2),
            "parser_tier": tier,
            "points": n_ours,
            "identical": bool(identical),
            "baseline_mb_s": round(mb / t_base, 2),
            "ours_mb_s": round(mb / t_ours, 2),
            "ours_parallel_mb_s": round(mb / t_par, 2),
            "parse_only_mb_s": round(mb / t_parse, 2),
            "workers": args.workers,
            "speedup": round(t_base / t_ours, 2),
            "speedup_parallel": round(t_base / t_par, 2),
            "speedup_cpu": round(cpu["base"] / cpu["ours"], 2),
            "baseline_cpu_mb_s": round(mb / cpu["base"], 2),
            "ours_cpu_mb_s": round(mb / cpu["ours"], 2),
            "resume_s": round(wall["resume"], 3),
            "corrupt_file_mb_s": round(fmb / t_bad, 2),
            "clean_file_mb_s": round(fmb / t_clean, 2),
            **{f"parse_{k}_mb_s": round(v, 2) for k, v in parse_mb_s.items()},
        }

        # Block generation on the prepared real rooms (built by the blocks module, if present).
        try:
            from pointseg.data.blocks import room_to_blocks
        except ImportError as exc:
            print(f"block generation: skipped ({exc})")
        else:
            loaded = [s3dis.load_room(e["path"]) for e in s3dis.list_rooms(ours)]
            total = sum(r["xyz"].shape[0] for r in loaded)
            for split, stride in (("train", 0.5), ("test", 1.0)):

                def cut(stride=stride):
                    return sum(
                        room_to_blocks(
                            r["xyz"], r["rgb"], r["label"], stride=stride, rng=0
                        ).data.shape[0]
                        for r in loaded
                    )

                t_blk, n_blocks = best_of(cut, args.repeat)
                pps = total / t_blk
                print(
                    f"room_to_blocks ({split}, stride {stride}): {n_blocks} blocks from {total:,} points "
                    f"in {t_blk:.3f} s = {pps / 1e6:.2f} M points/s"
                )
                stats[f"blocks_{split}_points_per_s"] = round(pps)
                stats[f"blocks_{split}_blocks"] = int(n_blocks)

    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
