"""`pointseg predict`: segment any point-cloud file (or a folder / glob of them) with a checkpoint.

    pointseg predict --checkpoint checkpoints/<run> --input scan.ply --out scan_seg.ply

Inputs: PLY, PCD / XYZ / PTS (Open3D when installed), whitespace text ``x y z [r g b]``, NPZ and
S3DIS room folders (`pointseg.data.pointcloud`). Each cloud is streamed through the model tile
by tile (`pointseg.engine.predict.predict_cloud`). Outputs (atomic): a PLY with class colours
and integer ``label`` + float ``confidence`` per vertex (`--format npz|txt|csv` for the others)
and ``<out stem>.summary.json`` with the per-class point counts.
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.commands._knn import add_knn_argument, apply_knn_argument
from pointseg.errors import ConfigError, DataError

_RGB_CONSTANT = 128  # --rgb constant: mid grey


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {s}")
    return v


def _nonneg_int(s: str) -> int:
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0; got {s}")
    return v


def _positive_float(s: str) -> float:
    v = float(s)
    if not v > 0 or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0; got {s}")
    return v


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="segment your own point clouds (PLY, PCD, XYZ/PTS/TXT, NPZ, S3DIS rooms) with a checkpoint",
        description=(
            "Segment every point of a point-cloud file with a segmentation checkpoint. The cloud is cut "
            "into tiles and sliding blocks (the checkpoint's block recipe) that are made lazily, so memory "
            "stays bounded; class probabilities are averaged over overlapping blocks. Writes a PLY with "
            "class colours and 'label' / 'confidence' vertex properties (or --format npz|txt|csv) and a "
            "per-class summary JSON."
        ),
    )
    p.add_argument(
        "--checkpoint", required=True, help="checkpoint file or run folder (best.pt, else last.pt)"
    )
    p.add_argument(
        "--input",
        required=True,
        nargs="+",
        help="point-cloud file(s), a folder of them, a glob ('scans/*.ply') or an S3DIS room folder",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output file (one input) or folder (several); default <input stem>_seg.<format> next to "
        "the input, or <folder>_seg/",
    )
    p.add_argument("--format", choices=["ply", "npz", "txt", "csv"], default=None,
                   help="output format (default: from --out's extension, else ply)")  # fmt: skip
    g = p.add_argument_group("input handling")
    g.add_argument(
        "--rgb",
        choices=["zeros", "constant"],
        default=None,
        help="colour for files without colour when the model uses colour: zeros (black) or constant "
        f"(grey {_RGB_CONSTANT})",
    )
    g.add_argument("--scale", type=_positive_float, default=1.0,
                   help="multiply coordinates by this to get metres (0.001 for mm, 0.01 for cm)")  # fmt: skip
    g.add_argument("--up", choices=["z", "y"], default="z",
                   help="the input's up axis; y-up scans are rotated to z-up for the model (outputs keep the input's coordinates)")  # fmt: skip
    g.add_argument("--reader", choices=["auto", "plain", "open3d"], default="auto",
                   help="auto: by extension; plain: the built-in 'x y z [r g b]' text reader; open3d")  # fmt: skip
    g.add_argument("--on-bad-line", choices=["stop", "skip"], default="stop",
                   help="text files: stop at a bad line (default) or skip bad lines; skip also drops points with NaN coordinates")  # fmt: skip
    g = p.add_argument_group("inference")
    v = g.add_mutually_exclusive_group()
    v.add_argument("--stride", type=_positive_float, default=None,
                   help="sliding-block stride in metres (default: the block size, the paper's test stride)")  # fmt: skip
    v.add_argument("--votes", type=_positive_int, default=None,
                   help="blocks per point on average: stride = block size / sqrt(votes) (4 -> stride 0.5 m)")  # fmt: skip
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:<i> or auto (default)")
    g.add_argument("--batch-size", type=_positive_int, default=None,
                   help="blocks per forward pass (default 8, or what --max-memory allows)")  # fmt: skip
    g.add_argument("--workers", type=_nonneg_int, default=None,
                   help="threads making blocks ahead of the network (0 = in the main thread); default 1 "
                   "on CUDA, 0 on CPU (where blocking is ~1%% of the time and a thread costs memory)")  # fmt: skip
    g.add_argument("--max-memory", default=None,
                   help="bound resident memory, e.g. 2GB: chooses tile and batch sizes")  # fmt: skip
    g.add_argument("--tile-size", type=_positive_float, default=None,
                   help="tile side in metres (default 10, or what --max-memory allows)")  # fmt: skip
    g.add_argument("--seed", type=int, default=0, help="seed of the point sampling inside blocks")
    g.add_argument("--threads", type=_positive_int, default=None, help="torch intra-op threads")
    add_knn_argument(g)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run_predict)


# ------------------------------------------------------------------------------ inputs
def expand_inputs(items: list[str]) -> list[Path]:
    """Files, folders (their point-cloud files and S3DIS room sub-folders) and globs → paths."""
    from pointseg.data.pointcloud import is_point_cloud_path

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if any(c in item for c in "*?[") and not p.exists():
            matches = sorted(Path(m) for m in glob.glob(item))
            if not matches:
                raise DataError(f"--input {item!r}: the pattern matches no file")
            out += matches
        elif p.is_dir() and not (p / "Annotations").is_dir():
            found = sorted(c for c in p.iterdir() if is_point_cloud_path(c))
            if not found:
                raise DataError(
                    f"--input {p}: the folder holds no point-cloud file (.ply, .pcd, .xyz, .pts, "
                    ".txt, .npz) and no S3DIS room folder"
                )
            out += found
        else:
            out.append(p)
    seen, unique = set(), []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def _output_paths(
    inputs: list[Path], out: str | None, fmt: str | None, many: bool
) -> tuple[list[Path], str]:
    if (
        out is not None
        and not many
        and Path(out).suffix.lower().lstrip(".") in ("ply", "npz", "txt", "csv")
    ):
        fmt = fmt or Path(out).suffix.lower().lstrip(".")
        return [Path(out)], fmt
    fmt = fmt or "ply"
    if out is None and not many:
        src = inputs[0]
        return [src.parent / f"{src.stem if src.is_file() else src.name}_seg.{fmt}"], fmt
    folder = (
        Path(out) if out is not None else inputs[0].parent.with_name(inputs[0].parent.name + "_seg")
    )
    names = [f"{p.stem if p.is_file() else p.name}_seg.{fmt}" for p in inputs]
    if len(set(names)) != len(names):  # same stem in two folders / formats: keep them apart
        names = [f"{p.parent.name}_{n}" for p, n in zip(inputs, names, strict=True)]
    return [folder / n for n in names], fmt


# ------------------------------------------------------------------------------ outputs
def write_segmentation(
    path: Path, fmt: str, xyz: np.ndarray, pred: np.ndarray, confidence: np.ndarray,
    class_names: list[str], rgb: np.ndarray | None = None, gt: np.ndarray | None = None,
) -> None:  # fmt: skip
    """Write one segmented cloud atomically in `fmt` (ply, npz, txt, csv)."""
    from pointseg.data.s3dis import CLASS_COLORS
    from pointseg.io import atomic_write

    label = pred.astype(np.int32)
    if fmt == "ply":
        from pointseg.data.ply import write_ply

        colours = CLASS_COLORS[label % len(CLASS_COLORS)]
        extra = {} if gt is None else {"gt": gt.astype(np.int32)}
        write_ply(path, xyz, rgb=colours, label=label, confidence=confidence.astype(np.float32),
                  comments=(f"classes {' '.join(class_names)}",), **extra)  # fmt: skip
    elif fmt == "npz":
        # The layout of `pointseg eval`'s prediction files (xyz, rgb, label = ground truth, pred),
        # so `pointseg view` opens it as a prediction; plus confidence and the class names.
        arrays: dict[str, Any] = {"xyz": xyz, "pred": label, "confidence": confidence,
                                  "class_names": np.asarray(class_names)}  # fmt: skip
        if rgb is not None:
            arrays["rgb"] = rgb
        if gt is not None:
            arrays["label"] = gt
        with atomic_write(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    elif fmt in ("txt", "csv"):
        sep = "," if fmt == "csv" else " "
        names = np.asarray(class_names, dtype=object)
        with atomic_write(path, suffix="." + fmt) as tmp, open(tmp, "w") as fh:
            cols = ["x", "y", "z", "label", "class", "confidence"]
            fh.write(sep.join(cols) + "\n" if fmt == "csv" else "# " + " ".join(cols) + "\n")
            for s in range(0, len(xyz), 1 << 18):
                e = s + (1 << 18)
                c = xyz[s:e]
                lines = [
                    f"{x:.6f}{sep}{y:.6f}{sep}{z:.6f}{sep}{lab}{sep}{nm}{sep}{cf:.4f}"
                    for x, y, z, lab, nm, cf in zip(
                        c[:, 0].tolist(), c[:, 1].tolist(), c[:, 2].tolist(),
                        label[s:e].tolist(), names[label[s:e]].tolist(),
                        confidence[s:e].tolist(), strict=True,
                    )
                ]  # fmt: skip
                fh.write("\n".join(lines) + "\n")
    else:  # pragma: no cover - argparse restricts the choices
        raise ConfigError(f"unknown output format {fmt!r}")


# ------------------------------------------------------------------------------ main
def _load_model(checkpoint: str) -> tuple[Any, dict, Path, list[str]]:
    from pointseg.engine.checkpoints import checkpoint_task, resolve_checkpoint
    from pointseg.engine.checkpoints import load_model as _load

    path = resolve_checkpoint(checkpoint)
    model, ckpt = _load(path)
    cfg = ckpt["model_config"]
    if checkpoint_task(ckpt) != "s3dis" or cfg.get("task") != "segmentation":
        raise ConfigError(
            f"{path} is a {cfg.get('task', '?')} checkpoint (dataset "
            f"{(ckpt.get('meta') or {}).get('dataset')}); `pointseg predict` needs a segmentation "
            "model that labels every point (e.g. trained with `pointseg train s3dis`)"
        )
    if int(cfg.get("in_channels", 9)) != 9:
        raise ConfigError(
            f"{path}: the model takes {cfg.get('in_channels')} input channels per point; pointseg "
            "predict provides the 9 block channels of S3DIS training (centred x y, z, r g b, "
            "normalised x y z) and cannot make others from a point-cloud file"
        )
    from pointseg.data.s3dis import CLASSES

    nc = int(cfg.get("num_classes", len(CLASSES)))
    names = list((ckpt.get("meta") or {}).get("classes") or [])
    if len(names) != nc:
        names = list(CLASSES) if nc == len(CLASSES) else [f"class_{i}" for i in range(nc)]
    return model, ckpt, path, names


def _model_frame(xyz: np.ndarray, scale: float, up: str) -> np.ndarray:
    """Input coordinates → the model's frame: metres (× scale), z up (y-up: (x, y, z) → (x, −z, y),
    a right-handed rotation about x)."""
    if scale == 1.0 and up == "z":
        return xyz
    out = np.empty_like(xyz)
    if up == "y":
        out[:, 0], out[:, 1], out[:, 2] = xyz[:, 0], -xyz[:, 2], xyz[:, 1]
    else:
        out[:] = xyz
    if scale != 1.0:
        out *= out.dtype.type(scale)
    return out


def run_predict(args: argparse.Namespace) -> int:
    apply_knn_argument(args)
    predict_files(
        args.checkpoint, args.input, out=args.out, fmt=args.format, rgb=args.rgb,
        scale=args.scale, up=args.up, reader=args.reader, on_bad_line=args.on_bad_line,
        stride=args.stride, votes=args.votes, device=args.device, batch_size=args.batch_size,
        workers=args.workers, max_memory=args.max_memory, tile_size=args.tile_size,
        seed=args.seed, threads=args.threads, progress=not args.no_progress,
    )  # fmt: skip
    return 0


def predict_files(
    checkpoint: str,
    inputs: list[str] | str,
    *,
    out: str | None = None,
    fmt: str | None = None,
    rgb: str | None = None,
    scale: float = 1.0,
    up: str = "z",
    reader: str = "auto",
    on_bad_line: str = "stop",
    stride: float | None = None,
    votes: int | None = None,
    device: str | None = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
    max_memory: str | int | None = None,
    tile_size: float | None = None,
    seed: int = 0,
    threads: int | None = None,
    progress: bool = True,
    print_fn=print,
) -> list[dict[str, Any]]:
    """Segment each input file; returns one summary dict per file (also written as JSON)."""
    import torch

    from pointseg.data.pointcloud import read_point_cloud
    from pointseg.engine.predict import (
        _parse_bytes,
        checkpoint_block_settings,
        plan_memory,
        predict_cloud,
    )
    from pointseg.engine.report import format_class_table, write_json
    from pointseg.metrics import ConfusionMatrix
    from pointseg.runtime import peak_rss_mb, resolve_device
    from pointseg.runtime.progress import progress_bar as _tqdm

    say = print_fn or (lambda s: None)
    if threads:
        torch.set_num_threads(threads)
    items = [inputs] if isinstance(inputs, str) else list(inputs)
    paths = expand_inputs(items)
    # A glob or a folder of files writes into an output folder, even when it holds one file.
    many = len(paths) > 1 or any(
        any(c in i for c in "*?[") or (Path(i).is_dir() and not (Path(i) / "Annotations").is_dir())
        for i in items
    )
    outs, fmt = _output_paths(paths, out, fmt, many)
    model, ckpt, ckpt_path, names = _load_model(checkpoint)
    settings = checkpoint_block_settings(ckpt, ckpt_path)
    nc = len(names)
    budget = _parse_bytes(max_memory)
    dev = resolve_device(device)
    model.to(dev)
    if workers is None:
        workers = 1 if dev.type == "cuda" else 0
    if stride is None:
        stride = settings.block_size / math.sqrt(votes) if votes else settings.block_size
        why = f"--votes {votes}" if votes else "the block size: the paper's test stride"
    else:
        why = "--stride"
    # Every choice, printed once.
    say(
        f"checkpoint: {ckpt_path} ({nc} classes, {sum(p.numel() for p in model.parameters()):,} parameters)"
    )
    say(
        f"blocks: {settings.block_size:g} m, {settings.num_point} points, min {settings.min_points} "
        f"points, centering {settings.centering} (from {settings.source})"
    )
    say(
        f"stride: {stride:g} m ({why}; each point in ~{(settings.block_size / stride) ** 2:.3g} blocks); "
        f"device {dev}; workers {workers}; seed {seed}"
    )
    if scale != 1.0 or up != "z":
        say(
            f"frame: coordinates × {scale:g} (to metres), {up}-up"
            + (" rotated to z-up" if up == "y" else "")
        )
    say(f"output: {fmt}" + (f" files in {outs[0].parent}" if many else f" {outs[0]}"))

    summaries: list[dict[str, Any]] = []
    bar = _tqdm(total=0, desc="predict", unit="pt", unit_scale=True, disable=not progress)
    rgb_said = plan_said = False
    try:
        for src, dst in zip(paths, outs, strict=True):
            t0 = time.perf_counter()
            cloud = read_point_cloud(src, reader=reader, on_bad_line=on_bad_line)
            n = len(cloud)
            bar.total += n
            bar.refresh()
            for note in cloud.notes:
                say(f"{src}: {note}")
            colours = cloud.rgb
            if colours is None:
                if rgb is None:
                    raise DataError(
                        f"{src}: the file has no colour, but the model was trained with colour (channels "
                        "r, g, b); choose what to feed it with --rgb zeros (black) or --rgb constant "
                        f"(grey {_RGB_CONSTANT}) — predictions may be less accurate without colour"
                    )
                value = 0 if rgb == "zeros" else _RGB_CONSTANT
                colours = np.full((n, 3), value, dtype=np.uint8)
                if not rgb_said:
                    say(
                        f"rgb: files without colour get {rgb} ({value}, {value}, {value}) (--rgb {rgb})"
                    )
                    rgb_said = True
            xyz_model = _model_frame(cloud.xyz, scale, up)
            plan = plan_memory(
                budget, xyz_model, num_classes=nc, config=ckpt["model_config"], settings=settings,
                stride=stride, batch_size=batch_size, tile_size=tile_size, workers=workers,
            )  # fmt: skip
            if not plan_said or budget is not None:
                say(f"memory: {plan.note}" if budget is not None else
                    f"tiles {plan.tile_size:g} m, batch {plan.batch_size} ({plan.note})")  # fmt: skip
                plan_said = True
            res = predict_cloud(
                model, xyz_model, colours, num_classes=nc, num_point=settings.num_point,
                block_size=settings.block_size, stride=stride, min_points=settings.min_points,
                centering=settings.centering, batch_size=plan.batch_size, tile_size=plan.tile_size,
                workers=workers, device=dev, seed=seed, keep_prob=False, on_points=bar.update,
            )  # fmt: skip
            del xyz_model
            write_segmentation(dst, fmt, cloud.xyz, res.pred, res.confidence, names,
                               rgb=cloud.rgb, gt=cloud.label)  # fmt: skip
            seconds = time.perf_counter() - t0
            counts = np.bincount(res.pred, minlength=nc)
            summary: dict[str, Any] = {
                "input": str(src),
                "output": str(dst),
                "format": fmt,
                "reader": cloud.reader,
                "points": n,
                "classes": {
                    nm: {"points": int(c), "fraction": float(c) / n}
                    for nm, c in zip(names, counts, strict=True)
                },  # fmt: skip
                "mean_confidence": float(res.confidence.mean()),
                "mean_votes": float(res.votes.mean()),
                "unscored_points": res.num_unscored,
                "blocks": res.num_blocks,
                "tiles": res.num_tiles,
                "settings": {
                    "checkpoint": str(ckpt_path.resolve()),
                    "block_size": settings.block_size,
                    "num_point": settings.num_point,
                    "min_points": settings.min_points,
                    "stride": stride,
                    "tile_size": plan.tile_size,
                    "batch_size": plan.batch_size,
                    "device": str(dev),
                    "scale": scale,
                    "up": up,
                    "rgb": None if cloud.rgb is not None else rgb,
                    "seed": seed,
                },  # fmt: skip
                "seconds": round(seconds, 3),
                "points_per_s": round(n / seconds, 1),
                "times": {k: round(v, 3) for k, v in res.times.items()},
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "notes": cloud.notes,
            }
            cm = None
            if (
                cloud.label is not None
                and cloud.label.size
                and 0 <= cloud.label.min()
                and cloud.label.max() < nc
            ):
                cm = ConfusionMatrix(nc, class_names=names).update(
                    res.pred.astype(np.int64), cloud.label.astype(np.int64)
                )
                summary["ground_truth"] = {"oa": cm.oa(), "miou": cm.miou(), "macc": cm.macc()}
            write_json(dst.with_name(dst.name.rsplit(".", 1)[0] + ".summary.json"), summary)
            summaries.append(summary)
            bar.clear()
            say(_summary_table(summary, names))
            if cm is not None:
                say(f"ground truth in {src}:\n{format_class_table(cm, names)}")
            say(f"wrote {dst} ({n:,} points, {seconds:.1f} s, {n / seconds:,.0f} points/s)")
            del cloud, res
    finally:
        bar.close()
    if many:
        total = sum(s["points"] for s in summaries)
        combined = {
            "files": summaries,
            "points": total,
            "classes": {nm: sum(s["classes"][nm]["points"] for s in summaries) for nm in names},
        }
        write_json(outs[0].parent / "summary.json", combined)
        say(f"{len(summaries)} files, {total:,} points; wrote {outs[0].parent / 'summary.json'}")
    return summaries


def _summary_table(summary: dict[str, Any], names: list[str]) -> str:
    lines = [f"{summary['input']}: {summary['points']:,} points"]
    lines.append(f"  {'class':<12} {'points':>12} {'share':>7}")
    for nm in names:
        c = summary["classes"][nm]
        if c["points"]:
            lines.append(f"  {nm:<12} {c['points']:>12,} {100 * c['fraction']:>6.2f}%")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    from pointseg.cli import main

    sys.exit(main(["predict", *sys.argv[1:]]))
