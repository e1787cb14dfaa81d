"""Evaluation: S3DIS block-sampled and whole-room protocols, 6-fold pooling, ModelNet40 OA/mAcc.

S3DIS protocols (DESIGN §4; every report names which one it is):

- **block-sampled** — the sampled points of the test blocks of the HDF5 test split (4096 points
  per 1 m × 1 m block, duplicated when short). This is what the DeepGCN paper scores; duplicated
  points count as many times as they were sampled, exactly as in the original evaluation.
- **whole-room** — every original point of every test room. Each room is cut into overlapping
  sliding blocks (the test recipe with `cover_all=True`: blocks with more than `num_point` points
  are split into several samples so every point of a kept block is sampled at least once).
  Softmax class probabilities are summed per original point over all blocks (and samples) that
  contain it and divided by its vote count (a point duplicated to pad a short block votes once
  per copy). Points of dropped blocks (fewer than `min_points` points) are left unscored; they
  take the averaged probabilities of their nearest scored point (3-D kd-tree,
  `scipy.spatial.cKDTree`). The blocks are made lazily, tile by tile, by the streaming loop of
  `pointseg.engine.predict` (the same one `pointseg predict` runs): memory per room is one
  (n_points, num_classes) float32 accumulator plus one tile's blocks (10 m × 10 m), not all of
  the room's blocks; the model's activations stay those of one batch.

6-fold: six models, one per test area; the confusion matrices of the six test areas are summed
(pooled intersections and unions) — not the mean of six mIoUs, which is reported next to it,
labelled as such, for comparison only.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pointseg.data.areas import area_number as _area_number
from pointseg.data.areas import normalize_area as _area_name
from pointseg.engine.checkpoints import (
    checkpoint_meta,
    checkpoint_task,
    load_model,
    meta_data,
    model_config_dict,
    num_point_setting,
    recorded_setting,
    resolve_checkpoint,
)
from pointseg.engine.report import format_class_table, format_metrics_table, write_eval_outputs
from pointseg.errors import ConfigError, DataError
from pointseg.io import atomic_write
from pointseg.metrics import ConfusionMatrix
from pointseg.runtime import file_sha256, peak_rss_mb, resolve_device
from pointseg.runtime.progress import progress_bar as _tqdm

# CLI value -> the name used in every report and file.
PROTOCOLS = {"block": "block-sampled", "room": "whole-room"}
PROTOCOL_TAGS = {v: k for k, v in PROTOCOLS.items()}  # file names: confusion_<tag>.csv
PROTOCOL_DESCRIPTIONS = {
    "block-sampled": "sampled points of the test blocks (HDF5 test split), as scored in the DeepGCN paper",
    "whole-room": "every original point: softmax averaged over overlapping sliding blocks, "
    "unscored points from their nearest scored point (3-D kd-tree)",
}

Print = Callable[[str], None]


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    # np.savez appends ".npz" to a str path that lacks it; writing to an open handle keeps the
    # temporary name of atomic_write.
    with atomic_write(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


# ---------------------------------------------------------------------------- whole-room
@dataclass
class RoomPrediction:
    """Whole-room result for one room of n points and C classes."""

    prob: np.ndarray  # (n, C) float32: averaged softmax (back-projected for unscored points)
    pred: np.ndarray  # (n,) int64: argmax of prob
    votes: np.ndarray  # (n,) int32: how many block samples scored the point (0 = back-projected)
    num_blocks: int  # block samples run through the model
    num_unscored: int  # points that got their probabilities from the nearest scored point


def predict_room(
    model: nn.Module,
    xyz: np.ndarray,
    rgb: np.ndarray,
    label: np.ndarray | None = None,
    *,
    num_classes: int,
    num_point: int = 4096,
    block_size: float = 1.0,
    stride: float = 0.5,
    min_points: int = 100,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    seed: int = 0,
    progress: bool = False,
    tile_size: float | None = 10.0,
    centering: str = "points",
) -> RoomPrediction:
    """Whole-room prediction of one room: sliding blocks → batched inference → vote → kd-tree.

    Runs the streaming loop of :func:`pointseg.engine.predict.predict_cloud` (blocks made lazily
    tile by tile, the same samples as `room_to_blocks(..., rng=default_rng(seed),
    cover_all=True)`), so memory does not grow with the room's number of blocks.

    Args:
        model: segmentation model, `model(x (B, num_point, 9)) -> logits (B, num_point, C)`;
            put in eval mode here.
        xyz (n, 3) float, rgb (n, 3) uint8; label (n,) is not used (kept for callers).
        stride: sliding-window stride in metres (0.5: each point lies in up to 4 blocks).
        seed: seeds the point sampling inside blocks (reproducible predictions).
        tile_size: tile side in metres of the stream (None: the whole room as one tile).

    Returns:
        RoomPrediction with per-point averaged probabilities (n, C) float32.
    """
    from pointseg.engine.predict import predict_cloud

    del label  # the blocks' labels are not needed to predict
    n = int(np.shape(xyz)[0])
    if n == 0:
        raise DataError("predict_room: the room has no points")
    bar = _tqdm(total=n, desc="  points", unit="pt", leave=False, disable=not progress)
    try:
        res = predict_cloud(
            model, xyz, rgb, num_classes=num_classes, num_point=num_point, block_size=block_size,
            stride=stride, min_points=min_points, centering=centering, batch_size=batch_size,
            tile_size=tile_size, device=device, seed=seed, on_points=bar.update,
        )  # fmt: skip
    finally:
        bar.close()
    return RoomPrediction(
        prob=res.prob,
        pred=res.pred.astype(np.int64),
        votes=res.votes,
        num_blocks=res.num_blocks,
        num_unscored=res.num_unscored,
    )


def evaluate_rooms(
    model: nn.Module,
    cache: str | os.PathLike,
    area: int | str,
    *,
    num_classes: int = 13,
    class_names: Sequence[str] | None = None,
    num_point: int = 4096,
    block_size: float = 1.0,
    stride: float = 0.5,
    min_points: int = 100,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    seed: int = 0,
    predictions_dir: str | os.PathLike | None = None,
    progress: bool = True,
    centering: str = "points",
) -> tuple[ConfusionMatrix, list[dict[str, Any]]]:
    """Whole-room protocol over every room of `area` in the room cache.

    Writes `<predictions_dir>/Area_N_<room>.npz` (xyz, rgb, label, pred, prob_max) per room when
    `predictions_dir` is given. Returns the pooled confusion matrix and one info dict per room.
    """
    from pointseg.data.s3dis import list_rooms, load_room

    cache = Path(cache)
    area_name = _area_name(area)
    rooms = _list_area_rooms(list_rooms, cache, area_name)
    cm = ConfusionMatrix(num_classes, class_names=class_names)
    info = []
    bar = _tqdm(rooms, desc=f"whole-room {area_name}", unit="room", disable=not progress)
    for r in bar:
        room_name = r["room"]
        bar.set_postfix_str(f"{room_name} ({r.get('points', '?')} pts)")
        room = load_room(cache / r["file"])
        t0 = time.perf_counter()
        res = predict_room(
            model,
            room["xyz"],
            room["rgb"],
            room["label"],
            num_classes=num_classes,
            num_point=num_point,
            block_size=block_size,
            stride=stride,
            min_points=min_points,
            batch_size=batch_size,
            device=device,
            seed=seed,
            progress=progress,
            centering=centering,
        )
        room_cm = ConfusionMatrix(num_classes, class_names=class_names).update(
            res.pred, room["label"]
        )
        cm += room_cm
        info.append(
            {
                "room": room_name,
                "points": int(len(res.pred)),
                "blocks": res.num_blocks,
                "unscored_points": res.num_unscored,
                "mean_votes": float(res.votes.mean()),
                "oa": room_cm.oa(),
                "miou": room_cm.miou(),
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        if predictions_dir is not None:
            _save_npz(
                Path(predictions_dir) / f"{area_name}_{room_name}.npz",
                xyz=np.asarray(room["xyz"], dtype=np.float32),
                rgb=np.asarray(room["rgb"], dtype=np.uint8),
                label=np.asarray(room["label"], dtype=np.uint8),
                pred=res.pred.astype(np.uint8 if num_classes <= 256 else np.int64),
                prob_max=res.prob.max(axis=1).astype(np.float32),
            )
        del room, res
    return cm, info


def _list_area_rooms(
    list_rooms: Callable[..., list[dict]], cache: Path, area_name: str
) -> list[dict]:
    if not cache.is_dir():
        raise DataError(
            f"room cache {cache} does not exist: run `pointseg prepare s3dis --raw <Stanford3dDataset folder> "
            f"--out {cache}` first, or pass --cache <dir>"
        )
    try:
        rooms = list_rooms(cache, [area_name])
    except FileNotFoundError as exc:
        raise DataError(
            f"{cache} is not a pointseg room cache ({exc.filename or exc} missing): run "
            f"`pointseg prepare s3dis --out {cache}` or pass --cache <dir>"
        ) from exc
    if not rooms:
        try:
            all_rooms = list_rooms(cache, None)
            areas = sorted({r["area"] for r in all_rooms})
        except Exception:  # noqa: BLE001 - only used to enrich the message
            areas = []
        raise DataError(
            f"no rooms of {area_name} in the room cache {cache} (areas present: {', '.join(areas) or 'none'}); "
            f"prepare that area (`pointseg prepare s3dis --areas {_area_number(area_name)}`) or choose --area"
        )
    return rooms


# ---------------------------------------------------------------------------- block-sampled
@torch.no_grad()
def evaluate_blocks(
    model: nn.Module,
    blocks_root: str | os.PathLike,
    area: int | str,
    *,
    num_classes: int = 13,
    class_names: Sequence[str] | None = None,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    split: str = "test",
    progress: bool = True,
) -> tuple[ConfusionMatrix, dict[str, Any]]:
    """Block-sampled protocol: score the sampled points of `area`'s blocks in the HDF5 split."""
    from pointseg.data.blocks import S3DISBlocks

    root = Path(blocks_root)
    area_n = _area_number(area)
    if not root.is_dir():
        raise DataError(
            f"HDF5 blocks folder {root} does not exist: run `pointseg blocks s3dis --cache <room cache> "
            f"--out {root} --split test` first, pass --blocks <dir>, or use --protocol room"
        )
    hint = (
        f"make them with `pointseg blocks s3dis --cache <room cache> --out {root} --split {split}`, "
        "pass --blocks <dir> / --area, or use --protocol room"
    )
    try:
        ds = S3DISBlocks(root, areas=[area_n], split=split)
    except FileNotFoundError as exc:
        raise DataError(f"block-sampled Area_{area_n}: {exc}; {hint}") from exc
    except DataError as exc:
        raise DataError(f"block-sampled Area_{area_n}: {exc}; {hint}") from None
    if len(ds) == 0:
        raise DataError(
            f"block-sampled Area_{area_n}: no {split} blocks of Area_{area_n} in {root}; {hint}"
        )
    dev = resolve_device(device)
    model.eval()
    cm = ConfusionMatrix(num_classes, class_names=class_names)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
    for x, y in _tqdm(
        loader, desc=f"block-sampled Area_{area_n}", unit="batch", disable=not progress
    ):
        logits = model(x.to(dev).float())  # (B, N, C)
        if logits.ndim != 3 or logits.shape[-1] != num_classes:
            raise ConfigError(
                f"model returned logits of shape {tuple(logits.shape)} for blocks {tuple(x.shape)}; "
                f"expected (B, N, {num_classes})"
            )
        cm.update(logits.argmax(-1).cpu(), y)
    return cm, {"blocks": len(ds), "root": str(root), "split": split}


# ---------------------------------------------------------------------------- checkpoints
def _s3dis_class_names(ckpt: dict[str, Any], path: Path) -> list[str]:
    from pointseg.data.s3dis import CLASSES

    cfg = model_config_dict(ckpt)
    if cfg.get("in_channels", 9) != 9:
        raise ConfigError(
            f"{path}: the model takes {cfg.get('in_channels')} input channels, S3DIS blocks have 9 "
            "(centred xy, z, rgb, normalised xyz); this checkpoint was not trained on S3DIS blocks"
        )
    if cfg.get("num_classes", len(CLASSES)) != len(CLASSES):
        raise ConfigError(
            f"{path}: the model predicts {cfg.get('num_classes')} classes, S3DIS has {len(CLASSES)}; "
            "evaluate it on its own dataset"
        )
    meta_classes = checkpoint_meta(ckpt).get("classes")
    if meta_classes is not None and list(meta_classes) != list(CLASSES):
        raise ConfigError(
            f"{path}: the checkpoint's class order {list(meta_classes)} differs from pointseg's S3DIS order "
            f"{list(CLASSES)}; results would be keyed to the wrong names (convert the checkpoint first)"
        )
    return list(CLASSES)


def _reusable(
    metrics_path: Path, sha: str, area: int, key: str, settings: dict[str, Any]
) -> ConfusionMatrix | None:
    """A confusion matrix saved by a previous `pointseg eval` of the same checkpoint/settings."""
    try:
        saved = json.loads(metrics_path.read_text())
        if saved.get("checkpoint_sha256") != sha or int(saved.get("test_area", -1)) != area:
            return None
        entry = saved["protocols"][key]
        if entry.get("settings") != settings:
            return None
        return ConfusionMatrix.from_matrix(entry["confusion"], class_names=saved.get("classes"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def evaluate_s3dis(
    checkpoint: str | os.PathLike,
    *,
    area: int | None = None,
    cache: str | os.PathLike | None = None,
    blocks: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    protocol: str = "both",
    batch_size: int = 8,
    num_point: int | None = None,
    stride: float = 0.5,
    block_size: float = 1.0,
    min_points: int = 100,
    device: str | None = None,
    seed: int = 0,
    save_predictions: bool = True,
    reuse: bool = False,
    progress: bool = True,
    print_fn: Print | None = print,
) -> dict[str, Any]:
    """`pointseg eval` for an S3DIS segmentation checkpoint; returns the metrics.json content.

    Data roots and test area default to those the training run recorded in the checkpoint
    (`meta["data"]`), then to `data/s3dis`, `data/s3dis_blocks`, Area 5. Writes into `out`
    (default `<checkpoint dir>/eval_area<k>/`): metrics.json, per_class.csv,
    confusion_<protocol>.csv/.png and predictions/Area_<k>_<room>.npz (whole-room).
    With `reuse=True`, protocols whose confusion matrix is already in `out/metrics.json` for the
    same checkpoint (sha256) and settings are not recomputed.
    """
    say = print_fn or (lambda s: None)
    t_start = time.perf_counter()
    path = resolve_checkpoint(checkpoint)
    model, ckpt = load_model(path)
    if checkpoint_task(ckpt) != "s3dis":
        raise ConfigError(
            f"{path} is a classification (ModelNet40) checkpoint, but S3DIS options were given; "
            "evaluate it with `pointseg eval --checkpoint <ckpt> [--data <ModelNet folder>]` without "
            "--area/--cache/--blocks/--protocol"
        )
    names = _s3dis_class_names(ckpt, path)
    from pointseg.recipe import checkpoint_recipe, stored_recipe

    recipe, stored = checkpoint_recipe(ckpt, str(path)), stored_recipe(ckpt, str(path))
    data = meta_data(ckpt)
    # Every setting records where it came from (metrics.json "sources"): a moved checkpoint never
    # falls back to a default silently.
    area, area_src = recorded_setting(area, "--area", data, ("test_area",), 5)
    cache, cache_src = recorded_setting(cache, "--cache", data, ("cache",), "data/s3dis")
    blocks_root, blocks_src = recorded_setting(
        blocks, "--blocks", data, ("blocks",), "data/s3dis_blocks"
    )
    area, cache, blocks_root = int(area), Path(cache), Path(blocks_root)
    if stored is not None:  # the model's own block recipe (e.g. a converted published model)
        num_point_source = "--num-points" if num_point else stored.source
        num_point, block_size = num_point or stored.num_point, stored.block_size
    else:
        num_point, num_point_source = num_point_setting(path, ckpt, num_point, 4096, blocks_root)
    if protocol not in ("block", "room", "both"):
        raise ConfigError(f"unknown protocol {protocol!r}; choose block, room or both")
    keys = ["block", "room"] if protocol == "both" else [protocol]
    out = Path(out) if out is not None else path.parent / f"eval_area{area}"
    dev = resolve_device(device)
    model.to(dev)
    sha = file_sha256(path)
    # Check every input exists before spending minutes on the first protocol.
    if "room" in keys:
        from pointseg.data.s3dis import list_rooms

        _list_area_rooms(list_rooms, cache, f"Area_{area}")
    if "block" in keys and not blocks_root.is_dir():
        raise DataError(
            f"HDF5 blocks folder {blocks_root} does not exist: run `pointseg blocks s3dis --cache {cache} "
            f"--out {blocks_root} --split test` first, pass --blocks <dir>, or use --protocol room"
        )

    say(
        f"evaluating {path} on S3DIS Area_{area} ({', '.join(PROTOCOLS[k] for k in keys)}) on {dev}"
        + (f"; {num_point} points per block from {num_point_source}" if "room" in keys else "")
    )
    say(
        f"input recipe: {block_size:g} m blocks, {num_point} points, centering {recipe.centering} "
        f"(from {recipe.source})"
    )
    if "block" in keys:
        from pointseg.recipe import blocks_mismatch

        for line in blocks_mismatch(blocks_root, recipe, num_point, block_size):
            say(f"warning: {line}")
    results: dict[str, ConfusionMatrix] = {}
    entries: dict[str, dict[str, Any]] = {}
    for key in keys:
        name = PROTOCOLS[key]
        if key == "block":
            settings = {"blocks": str(blocks_root), "split": "test"}
        else:
            settings = {
                "cache": str(cache),
                "num_point": num_point,
                "block_size": block_size,
                "stride": stride,
                "min_points": min_points,
                "seed": seed,
                **({"centering": recipe.centering} if recipe.centering != "points" else {}),
            }
        cm = _reusable(out / "metrics.json", sha, area, name, settings) if reuse else None
        extra: dict[str, Any] = {}
        if cm is not None:
            say(f"{name}: reusing the confusion matrix in {out / 'metrics.json'}")
            extra = {"reused": True}
            try:
                old = json.loads((out / "metrics.json").read_text())["protocols"][name]
                extra.update({k: v for k, v in old.items() if k in ("rooms", "blocks")})
            except (OSError, ValueError, KeyError):
                pass
        elif key == "block":
            cm, info = evaluate_blocks(
                model,
                blocks_root,
                area,
                num_classes=len(names),
                class_names=names,
                batch_size=batch_size,
                device=dev,
                progress=progress,
            )
            extra = {"blocks": info["blocks"]}
        else:
            cm, rooms = evaluate_rooms(
                model,
                cache,
                area,
                num_classes=len(names),
                class_names=names,
                num_point=num_point,
                block_size=block_size,
                stride=stride,
                min_points=min_points,
                batch_size=batch_size,
                device=dev,
                seed=seed,
                centering=recipe.centering,
                predictions_dir=out / "predictions" if save_predictions else None,
                progress=progress,
            )
            extra = {
                "rooms": rooms,
                "blocks": sum(r["blocks"] for r in rooms),
                "unscored_points": sum(r["unscored_points"] for r in rooms),
            }
        results[name] = cm
        entries[name] = {
            "name": name,
            "description": PROTOCOL_DESCRIPTIONS[name],
            "settings": settings,
            **cm.as_dict(names),
            **extra,
        }
        say(f"\n[{name}] S3DIS Area_{area}\n{format_class_table(cm, names)}")

    # Keep the other protocol of an earlier `pointseg eval` of the same checkpoint in the same
    # folder (its confusion_*.csv/png stay on disk), so metrics.json never disagrees with them.
    try:
        prev = json.loads((out / "metrics.json").read_text())
        if prev.get("checkpoint_sha256") == sha and int(prev.get("test_area", -1)) == area:
            for name in PROTOCOLS.values():
                if name in prev.get("protocols", {}) and name not in entries:
                    entries[name] = {**prev["protocols"][name], "reused": True}
                    results[name] = ConfusionMatrix.from_matrix(
                        entries[name]["confusion"], class_names=names
                    )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    order = list(PROTOCOLS.values())
    entries = dict(sorted(entries.items(), key=lambda kv: order.index(kv[0])))
    results = dict(sorted(results.items(), key=lambda kv: order.index(kv[0])))
    metrics = {
        "dataset": "s3dis",
        "task": "segmentation",
        "checkpoint": str(path.resolve()),
        "checkpoint_sha256": sha,
        "test_area": area,
        "classes": names,
        "protocols": entries,
        "device": str(dev),
        "batch_size": batch_size,
        "num_point": num_point,
        "num_point_source": num_point_source,
        "sources": {
            "test_area": area_src,
            "cache": cache_src,
            "blocks": blocks_src,
            "num_point": num_point_source,
        },
        "elapsed_s": round(time.perf_counter() - t_start, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    write_eval_outputs(
        out, metrics, results, names, title_prefix=f"S3DIS Area_{area}", tags=PROTOCOL_TAGS
    )
    say(
        f"\nS3DIS Area_{area} per-class IoU (%) by protocol\n{format_metrics_table(results, names)}"
    )
    say(f"peak memory (ru_maxrss): {metrics['peak_rss_mb']:.0f} MiB; wrote {out}")
    return metrics


__all__ = [
    "PROTOCOLS",
    "PROTOCOL_DESCRIPTIONS",
    "RoomPrediction",
    "evaluate_blocks",
    "evaluate_rooms",
    "evaluate_s3dis",
    "predict_room",
]
