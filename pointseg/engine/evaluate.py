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

import hashlib
import json
import os
import resource
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pointseg.engine.report import (
    fmt_pct,
    format_class_table,
    format_metrics_table,
    plot_confusion,
    write_confusion_csv,
    write_json,
    write_per_class_csv,
)
from pointseg.errors import ConfigError, DataError
from pointseg.io import atomic_write
from pointseg.metrics import ConfusionMatrix, mean_of_mious

__all__ = [
    "PROTOCOLS",
    "RoomPrediction",
    "resolve_device",
    "peak_rss_mb",
    "file_sha256",
    "predict_room",
    "evaluate_blocks",
    "evaluate_rooms",
    "evaluate_s3dis",
    "evaluate_modelnet",
    "evaluate_modelnet_checkpoint",
    "evaluate_checkpoint",
    "resolve_checkpoint",
    "six_fold",
    "scale_shift",
]

# CLI value -> the name used in every report and file.
PROTOCOLS = {"block": "block-sampled", "room": "whole-room"}
PROTOCOL_DESCRIPTIONS = {
    "block-sampled": "sampled points of the test blocks (HDF5 test split), as scored in the DeepGCN paper",
    "whole-room": "every original point: softmax averaged over overlapping sliding blocks, "
    "unscored points from their nearest scored point (3-D kd-tree)",
}

Print = Callable[[str], None]


# ---------------------------------------------------------------------------- small helpers
def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device` if given, else CUDA when available, else CPU (never hard-coded)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"bad --device {device!r}: {exc}; use cpu, cuda or cuda:<index>"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {device}: CUDA is not available on this machine; use --device cpu"
        )
    return dev


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far in MiB (`ru_maxrss`: KiB on Linux, B on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tqdm(iterable: Any = None, **kw: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)


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


def _area_name(area: int | str) -> str:
    s = str(area)
    return s if s.startswith("Area_") else f"Area_{int(s)}"


def _area_number(area: int | str) -> int:
    return int(str(area).replace("Area_", ""))


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
def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run dir (→ its best.pt, else last.pt)."""
    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise DataError(
            f"run folder {p} has no best.pt or last.pt: pass a checkpoint file or a finished run"
        )
    if not p.exists():
        raise DataError(f"checkpoint {p} does not exist")
    return p


def _load(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    from pointseg.checkpoint import model_from_checkpoint

    try:
        return model_from_checkpoint(path)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot load checkpoint {path}: {exc}") from exc


def _model_config(ckpt: dict[str, Any]) -> dict[str, Any]:
    cfg = ckpt.get("model_config", {})
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


def _meta(ckpt: dict[str, Any]) -> dict[str, Any]:
    return dict(ckpt.get("meta") or {})


def _meta_data(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The training run's data settings (`meta["data"]`, written by the training engine)."""
    meta = _meta(ckpt)
    data = dict(meta.get("data") or {})
    for key in ("test_area", "cache", "blocks", "num_point"):  # tolerate flat meta as well
        if key not in data and key in meta:
            data[key] = meta[key]
    return data


def checkpoint_task(ckpt: dict[str, Any]) -> str:
    """ "s3dis" for segmentation checkpoints, "modelnet40" for classification ones."""
    task = _model_config(ckpt).get("task") or _meta(ckpt).get("task") or "segmentation"
    return "modelnet40" if task == "classification" else "s3dis"


def _s3dis_class_names(ckpt: dict[str, Any], path: Path) -> list[str]:
    from pointseg.data.s3dis import CLASSES

    cfg = _model_config(ckpt)
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
    meta_classes = _meta(ckpt).get("classes")
    if meta_classes is not None and list(meta_classes) != list(CLASSES):
        raise ConfigError(
            f"{path}: the checkpoint's class order {list(meta_classes)} differs from pointseg's S3DIS order "
            f"{list(CLASSES)}; results would be keyed to the wrong names (convert the checkpoint first)"
        )
    return list(CLASSES)


def _run_config(path: Path) -> dict[str, Any]:
    """The training run's resolved config (`config.yaml` next to the checkpoint), or {}."""
    cfg_path = path.parent / "config.yaml"
    if not cfg_path.is_file():
        return {}
    try:
        import yaml

        cfg = yaml.safe_load(cfg_path.read_text())
        return cfg if isinstance(cfg, dict) else {}
    except (OSError, ValueError, yaml.YAMLError):
        return {}


def _blocks_num_point(root: Path) -> int | None:
    """Points per block of the training run's HDF5 blocks (whole-room inference then sees the
    density the model was trained on): the blocks manifest, else the first HDF5 file's shape."""
    for split in ("train", "test"):
        try:
            params = json.loads((root / split / "manifest.json").read_text())["params"]
            return int(params["num_point"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    for folder in (root / "train", root / "test", root):
        files = sorted(folder.glob("ply_data_all_*.h5")) if folder.is_dir() else []
        if files:
            try:
                import h5py

                with h5py.File(files[0], "r") as f:
                    return int(f["data"].shape[1])
            except (OSError, KeyError, IndexError):
                return None
    return None


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
    model, ckpt = _load(path)
    if checkpoint_task(ckpt) != "s3dis":
        raise ConfigError(
            f"{path} is a classification (ModelNet40) checkpoint, but S3DIS options were given; "
            "evaluate it with `pointseg eval --checkpoint <ckpt> [--data <ModelNet folder>]` without "
            "--area/--cache/--blocks/--protocol"
        )
    names = _s3dis_class_names(ckpt, path)
    from pointseg.recipe import checkpoint_recipe, stored_recipe

    recipe, stored = checkpoint_recipe(ckpt, str(path)), stored_recipe(ckpt, str(path))
    if stored is not None:  # the model's own block recipe (e.g. a converted published model)
        num_point, block_size = num_point or stored.num_point, stored.block_size
    data = _meta_data(ckpt)
    area = int(area if area is not None else data.get("test_area", 5))
    cache = Path(cache if cache is not None else data.get("cache") or "data/s3dis")
    blocks_root = Path(blocks if blocks is not None else data.get("blocks") or "data/s3dis_blocks")
    num_point = int(
        num_point
        or data.get("num_point")
        or _run_config(path).get("num_points")
        or _blocks_num_point(blocks_root)
        or 4096
    )
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
        "elapsed_s": round(time.perf_counter() - t_start, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    _write_outputs(out, metrics, results, names, title_prefix=f"S3DIS Area_{area}")
    say(
        f"\nS3DIS Area_{area} per-class IoU (%) by protocol\n{format_metrics_table(results, names)}"
    )
    say(f"peak memory (ru_maxrss): {metrics['peak_rss_mb']:.0f} MiB; wrote {out}")
    return metrics


def _write_outputs(
    out: Path,
    metrics: dict[str, Any],
    results: dict[str, ConfusionMatrix],
    names: Sequence[str],
    *,
    title_prefix: str,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    short = {v: k for k, v in PROTOCOLS.items()}
    for name, cm in results.items():
        tag = short.get(name, name)
        write_confusion_csv(out / f"confusion_{tag}.csv", cm, names)
        plot_confusion(
            out / f"confusion_{tag}.png",
            cm,
            names,
            title=f"{title_prefix} — {name} (row-normalised); mIoU {fmt_pct(cm.miou())}",
        )
    write_per_class_csv(out / "per_class.csv", results, names)
    write_json(out / "metrics.json", metrics)


# ---------------------------------------------------------------------------- 6-fold
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
        a = _meta_data(ckpt).get("test_area")
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
    _write_outputs(out, metrics, pooled, names, title_prefix=f"S3DIS pooled areas {areas_sorted}")
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


# ---------------------------------------------------------------------------- ModelNet40
def scale_shift(
    points: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    scale: tuple[float, float] = (2.0 / 3.0, 1.5),
    shift: float = 0.2,
) -> torch.Tensor:
    """Random anisotropic scale U(2/3, 3/2) per axis and shift U(−0.2, 0.2) per shape (DGCNN).

    points (B, N, 3+) — only the first 3 channels are transformed.
    """
    b = points.shape[0]
    s = torch.empty(b, 1, 3).uniform_(scale[0], scale[1], generator=generator)  # (B, 1, 3)
    t = torch.empty(b, 1, 3).uniform_(-shift, shift, generator=generator)  # (B, 1, 3)
    out = points.clone()
    out[..., :3] = points[..., :3] * s.to(points) + t.to(points)
    return out


@torch.no_grad()
def evaluate_modelnet(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    *,
    num_classes: int = 40,
    class_names: Sequence[str] | None = None,
    batch_size: int = 16,
    votes: int = 1,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> ConfusionMatrix:
    """OA / mean class accuracy over a ModelNet split.

    votes = 1: one pass on the points as given. votes = V > 1: logits averaged over V passes, each
    with a random scale/shift augmentation (`scale_shift`, reproducible from `seed`).
    """
    if votes < 1:
        raise ConfigError(f"--votes must be >= 1; got {votes}")
    dev = resolve_device(device)
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    cm = ConfusionMatrix(num_classes, class_names=class_names)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=0
    )
    for x, y in _tqdm(loader, desc="ModelNet test", unit="batch", disable=not progress):
        x = x.float()
        logits = torch.zeros(x.shape[0], num_classes)
        for _ in range(votes):
            xv = x if votes == 1 else scale_shift(x, gen)
            out = model(xv.to(dev))
            if out.ndim != 2 or out.shape[-1] != num_classes:
                raise ConfigError(
                    f"model returned logits of shape {tuple(out.shape)} for shapes {tuple(x.shape)}; "
                    f"expected (B, {num_classes}) — is this a classification checkpoint?"
                )
            logits += out.float().cpu()
        cm.update(logits.argmax(-1), torch.as_tensor(y).reshape(-1))
    return cm


def _modelnet_dataset(
    root: Path, split: str, num_points: int, classes: Sequence[str] | None = None
) -> tuple[Any, list[str]]:
    """ModelNetH5 for a folder of HDF5 files, else ModelNetMeshes over `<class>/<split>/*.off`.

    `classes` (the training run's, from the checkpoint) fixes the label order of a mesh folder,
    so class folders missing from the test split cannot shift the labels.
    """
    from pointseg.data import modelnet as mn

    if not root.is_dir():
        raise DataError(
            f"ModelNet folder {root} does not exist: pass --data <modelnet40_ply_hdf5_2048 folder or a "
            "ModelNet mesh folder> (`pointseg synth modelnet --out <dir>` makes a small one)"
        )
    is_h5 = any(root.glob("*.h5")) or (root / f"{split}_files.txt").exists()
    if is_h5:
        ds = mn.ModelNetH5(root, split, num_points=num_points)
    else:
        ds = mn.ModelNetMeshes(root, split, num_points, classes=list(classes) if classes else None)
    names = list(getattr(ds, "classes", None) or classes or mn.MODELNET40_CLASSES)
    if classes and list(classes) != names:
        raise ConfigError(
            f"the checkpoint was trained on classes {list(classes)} but {root} names {names}; "
            "results would be keyed to the wrong names — evaluate on the dataset it was trained on"
        )
    if len(ds) == 0:
        raise DataError(f"no {split} shapes found in {root}")
    return ds, names


def evaluate_modelnet_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    batch_size: int = 16,
    num_points: int | None = None,
    votes: int = 1,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
    print_fn: Print | None = print,
) -> dict[str, Any]:
    """`pointseg eval` for a ModelNet40 classification checkpoint: OA, mAcc, per-class accuracy."""
    say = print_fn or (lambda s: None)
    t0 = time.perf_counter()
    path = resolve_checkpoint(checkpoint)
    model, ckpt = _load(path)
    if checkpoint_task(ckpt) != "modelnet40":
        raise ConfigError(
            f"{path} is a segmentation (S3DIS) checkpoint, but ModelNet options were given (--data/--votes); "
            "evaluate it with --area/--cache/--blocks"
        )
    cfg = _model_config(ckpt)
    meta_data = _meta_data(ckpt)
    root = Path(
        data
        if data is not None
        else meta_data.get("data") or meta_data.get("root") or "data/modelnet40"
    )
    num_points = int(
        num_points or meta_data.get("num_points") or _run_config(path).get("num_points") or 1024
    )
    ds, names = _modelnet_dataset(root, "test", num_points, _meta(ckpt).get("classes"))
    nc = int(cfg.get("num_classes", len(names)))
    if len(names) != nc:
        names = (names + [str(i) for i in range(len(names), nc)])[:nc]
    dev = resolve_device(device)
    model.to(dev)
    say(
        f"evaluating {path} on the ModelNet test split of {root} ({len(ds)} shapes, votes={votes}) on {dev}"
    )
    cm = evaluate_modelnet(
        model,
        ds,
        num_classes=nc,
        class_names=names,
        batch_size=batch_size,
        votes=votes,
        seed=seed,
        device=dev,
        progress=progress,
    )
    out = Path(out) if out is not None else path.parent / "eval_modelnet40"
    name = "test" if votes == 1 else f"test, {votes} votes"
    metrics = {
        "dataset": "modelnet40",
        "task": "classification",
        "checkpoint": str(path.resolve()),
        "checkpoint_sha256": file_sha256(path),
        "data": str(root),
        "votes": votes,
        "num_points": num_points,
        "classes": names,
        "protocols": {"classification": {"name": name, **cm.as_dict(names)}},
        "oa": cm.oa(),
        "macc": cm.macc(),
        "elapsed_s": round(time.perf_counter() - t0, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    _write_outputs(out, metrics, {"classification": cm}, names, title_prefix=f"ModelNet ({name})")
    present = cm.support > 0
    shown = [n for n, keep in zip(names, present, strict=True) if keep]
    sub = ConfusionMatrix.from_matrix(cm.matrix[np.ix_(present, present)], class_names=shown)
    say(f"\n[ModelNet {name}] classes present in the test split\n{format_class_table(sub, shown)}")
    say(f"ModelNet ({name}): OA {fmt_pct(cm.oa())}  mAcc {fmt_pct(cm.macc())}; wrote {out}")
    return metrics


# ---------------------------------------------------------------------------- dispatch
def evaluate_checkpoint(checkpoint: str | os.PathLike, **kw: Any) -> dict[str, Any]:
    """Evaluate any checkpoint: S3DIS options go to `evaluate_s3dis`, ModelNet ones to
    `evaluate_modelnet_checkpoint`; mixing them with the wrong task raises ConfigError.

    `num_points` means points per block (S3DIS whole-room inference) or per shape (ModelNet).
    Options left at None are not passed on (the callee's defaults / the training run's apply).
    """
    from pointseg.checkpoint import load_checkpoint

    s3dis_keys = ("area", "cache", "blocks", "protocol", "stride", "save_predictions")
    modelnet_keys = ("data", "votes")
    path = resolve_checkpoint(checkpoint)
    ckpt = load_checkpoint(path)
    if (ckpt.get("model_config") or {}).get("kind") == "graph":  # a graph task (pointseg.tasks)
        from pointseg.engine.graph import evaluate_graph_checkpoint

        keep = ("data", "out", "device", "views", "parts", "seed")
        ignored = ("batch_size", "progress")
        return evaluate_graph_checkpoint(
            path,
            **{k: v for k, v in kw.items() if k in keep},
            **{k: v for k, v in kw.items() if k not in keep + ignored},
        )
    task = checkpoint_task(ckpt)
    graph_only = [k for k in ("views", "parts") if kw.pop(k, None) is not None]
    if graph_only:
        flags = ", ".join("--" + k for k in graph_only)
        raise ConfigError(f"{path}: {flags} apply to graph node tasks (e.g. ogbn-proteins) only")
    given = {k: v for k, v in kw.items() if v is not None}
    wrong = [k for k in (s3dis_keys if task == "modelnet40" else modelnet_keys) if k in given]
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in sorted(wrong))
        if task == "modelnet40":
            raise ConfigError(
                f"{path} is a classification (ModelNet40) checkpoint; {flags} only apply to S3DIS "
                "segmentation checkpoints — use --data <ModelNet folder> [--votes N]"
            )
        raise ConfigError(
            f"{path} is a segmentation (S3DIS) checkpoint; {flags} only apply to ModelNet40 "
            "classification checkpoints — use --area/--cache/--blocks/--protocol"
        )
    if task == "modelnet40":
        return evaluate_modelnet_checkpoint(path, **given)
    if "num_points" in given:
        given["num_point"] = given.pop("num_points")
    return evaluate_s3dis(path, **given)
