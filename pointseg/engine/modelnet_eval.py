"""ModelNet40 evaluation: overall accuracy (OA), mean class accuracy (mAcc), per-class accuracy,
optionally averaged over test-time augmentations (`votes`: the training augmentation
`pointseg.data.augment.scale_shift`, drawn from a seeded generator)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pointseg.data.augment import scale_shift
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
from pointseg.engine.report import fmt_pct, format_class_table, write_eval_outputs
from pointseg.errors import ConfigError, DataError
from pointseg.metrics import ConfusionMatrix
from pointseg.runtime import file_sha256, peak_rss_mb, resolve_device
from pointseg.runtime.progress import progress_bar as _tqdm

Print = Callable[[str], None]


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
    model, ckpt = load_model(path)
    if checkpoint_task(ckpt) != "modelnet40":
        raise ConfigError(
            f"{path} is a segmentation (S3DIS) checkpoint, but ModelNet options were given (--data/--votes); "
            "evaluate it with --area/--cache/--blocks"
        )
    cfg = model_config_dict(ckpt)
    data_meta = meta_data(ckpt)
    root, root_source = recorded_setting(
        data, "--data", data_meta, ("data", "root"), "data/modelnet40"
    )
    root = Path(root)
    num_points, num_points_source = num_point_setting(path, ckpt, num_points, 1024)
    ds, names = _modelnet_dataset(root, "test", num_points, checkpoint_meta(ckpt).get("classes"))
    nc = int(cfg.get("num_classes", len(names)))
    if len(names) != nc:
        names = (names + [str(i) for i in range(len(names), nc)])[:nc]
    dev = resolve_device(device)
    model.to(dev)
    say(
        f"evaluating {path} on the ModelNet test split of {root} ({len(ds)} shapes, votes={votes}) on {dev}; "
        f"{num_points} points per shape from {num_points_source}"
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
        "num_points_source": num_points_source,
        "sources": {"data": root_source, "num_points": num_points_source},
        "classes": names,
        "protocols": {"classification": {"name": name, **cm.as_dict(names)}},
        "oa": cm.oa(),
        "macc": cm.macc(),
        "elapsed_s": round(time.perf_counter() - t0, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    write_eval_outputs(
        out, metrics, {"classification": cm}, names, title_prefix=f"ModelNet ({name})"
    )
    present = cm.support > 0
    shown = [n for n, keep in zip(names, present, strict=True) if keep]
    sub = ConfusionMatrix.from_matrix(cm.matrix[np.ix_(present, present)], class_names=shown)
    say(f"\n[ModelNet {name}] classes present in the test split\n{format_class_table(sub, shown)}")
    say(f"ModelNet ({name}): OA {fmt_pct(cm.oa())}  mAcc {fmt_pct(cm.macc())}; wrote {out}")
    return metrics


__all__ = ["evaluate_modelnet", "evaluate_modelnet_checkpoint", "scale_shift"]
