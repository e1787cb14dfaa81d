"""ModelNet40 shape classification (`pointseg train modelnet40`, `pointseg eval` of its checkpoints).

Paper defaults (DESIGN §3): SGD lr 0.1 momentum 0.9 (weight decay 1e-4 as in the original code),
cosine to 1e-3 over 400 epochs, label-smoothed cross-entropy 0.2 (PyTorch's `label_smoothing`,
which spreads ε/C over all classes), random scale [2/3, 3/2] and shift [-0.2, 0.2] per shape, 1024
points. Validation holds out a seeded fraction of the training shapes; best.pt has the best
validation OA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pointseg.data.augment import scale_shift
from pointseg.errors import ConfigError, DataError
from pointseg.tasks import register_task
from pointseg.tasks.pointcloud import DataBundle, PointCloudTask, seeded_pick

DEFAULT_NUM_POINTS = 1024


class ModelNetTask(PointCloudTask):
    name = "modelnet40"
    description = "shape classification on ModelNet40"
    model_task = "classification"
    model_hint = "resgcn28_modelnet"
    checkpoint_label = "classification (ModelNet40)"
    best_metric = "val_oa"
    throughput = "samples"
    defaults: dict[str, Any] = {
        "model": "resgcn28_modelnet",
        "epochs": 400,
        "batch_size": 32,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "scheduler": "cosine",
        "min_lr": 1e-3,
        "label_smoothing": 0.2,
        "augment": True,
        "num_points": DEFAULT_NUM_POINTS,
    }
    settings = frozenset(
        {
            "init",
            "data",
            "val_fraction",
            "val_min",
            "num_points",
            "max_train_samples",
            "max_val_samples",
            "label_smoothing",
            "augment",
            "num_workers",
            "sync_bn",
        }
    )
    eval_options = PointCloudTask.eval_options | {"data", "votes"}
    setting_help = {
        "data": "modelnet40_ply_hdf5_2048 folder or mesh folder <class>/{train,test}/*.off",
        "val_fraction": "fraction of training shapes held out for validation / best.pt (default 0.1)",
        "num_points": "points per shape (default 1024)",
    }

    def _build(self, cfg) -> DataBundle:
        from torch.utils.data import Subset

        from pointseg.data import modelnet as M

        if cfg.data is None:
            raise ConfigError(
                "pointseg train modelnet40 needs --data <folder>: the published modelnet40_ply_hdf5_2048 folder "
                "or a ModelNet mesh folder <class>/{train,test}/*.off (e.g. from `pointseg synth modelnet`)"
            )
        root = Path(cfg.data)
        if not root.is_dir():
            raise DataError(
                f"ModelNet folder {root} does not exist; pass --data <modelnet40_ply_hdf5_2048 or mesh folder>"
            )
        n_points = cfg.num_points or DEFAULT_NUM_POINTS
        if any(root.glob("*.h5")):
            full = M.ModelNetH5(root, "train", num_points=n_points)
            kind = "h5"
        else:
            full = M.ModelNetMeshes(root, "train", num_points=n_points, progress=cfg.progress)
            kind = "meshes"
        n = len(full)
        if n == 0:
            raise DataError(f"no training shapes found in {root}")
        idx = list(range(n))
        val_idx: list[int] = []
        if cfg.val_fraction > 0 and n >= 2:
            n_val = min(max(cfg.val_min, round(cfg.val_fraction * n)), n - 1)
            val_idx = seeded_pick(idx, n_val, cfg.seed, 1)
            held = set(val_idx)
            idx = [i for i in idx if i not in held]
        if cfg.max_train_samples is not None and len(idx) > cfg.max_train_samples:
            idx = seeded_pick(idx, cfg.max_train_samples, cfg.seed, 2)
        if cfg.max_val_samples is not None and len(val_idx) > cfg.max_val_samples:
            val_idx = seeded_pick(val_idx, cfg.max_val_samples, cfg.seed, 3)
        points, _ = full[0]
        classes = list(getattr(full, "classes", None) or M.MODELNET40_CLASSES)
        info = {
            "num_point": n_points,
            "dataset": "modelnet40",
            "data": str(root.resolve()),
            "format": kind,
            "train_shapes": len(idx),
            "val_shapes": len(val_idx),
        }
        return DataBundle(
            Subset(full, idx),
            Subset(full, val_idx) if val_idx else None,
            int(torch.as_tensor(points).shape[-1]),
            len(classes),
            classes,
            info,
        )

    def size_classes(self, cfg, mcfg, data: DataBundle):
        if mcfg.num_classes != data.num_classes and "num_classes" not in cfg.model_args:
            # A mesh folder with a subset of the ModelNet40 classes (labels index its own sorted
            # class folders): size the classifier to the data unless the user fixed num_classes.
            self.note(
                f"note: {data.num_classes} classes in the data ({', '.join(data.classes)}); "
                f"model.num_classes set to {data.num_classes}"
            )
            mcfg = mcfg.replace(num_classes=data.num_classes)
        return mcfg

    def prepare(self, x, y, cfg, generator=None, train=True):
        """With `augment`, the DGCNN/DeepGCN recipe: per-shape anisotropic scale in [2/3, 3/2],
        shift in [-0.2, 0.2] (`pointseg.data.augment.scale_shift`, training only; test-time
        voting draws the same augmentation from a seeded generator)."""
        x, y = x.float(), y.long().reshape(-1)
        if cfg.augment and train:
            x = scale_shift(x)
        return x, y

    def evaluate(self, path: Path, ckpt: dict, **options: Any) -> dict:
        from pointseg.engine.modelnet_eval import evaluate_modelnet_checkpoint

        options.setdefault("batch_size", 8)
        return evaluate_modelnet_checkpoint(path, **options)


register_task(ModelNetTask())
