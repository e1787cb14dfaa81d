"""S3DIS semantic segmentation (`pointseg train s3dis`, `pointseg eval` of its checkpoints).

Paper defaults (DESIGN §3) are `TrainConfig`'s own: Adam lr 1e-3, StepLR every 20 epochs × 0.5,
100 epochs, batch 16, plain cross-entropy, no augmentation, test area 5. Training reads the HDF5
blocks of `pointseg blocks s3dis` (`--blocks`); validation holds out whole training rooms (never
the test area); best.pt has the best validation mIoU. Evaluation runs the block-sampled and
whole-room protocols of `pointseg.engine.s3dis_eval`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pointseg.data.areas import area_in
from pointseg.data.augment import rotate_z
from pointseg.errors import ConfigError, DataError, PointsegError
from pointseg.tasks import register_task
from pointseg.tasks.pointcloud import DataBundle, PointCloudTask, seeded_pick


def _training_recipe(root: Path, info: dict[str, Any]) -> dict[str, Any] | None:
    """The input recipe of the blocks this run trains on, read once from their manifest and
    stored in every checkpoint (`meta["input"]`): `eval`, `predict` and `view` then need not find
    the blocks folder again (it may have moved). None for blocks without a manifest (PointNet's
    published HDF5 files), whose recipe is then worked out at eval time as before."""
    from pointseg.recipe import InputRecipe, blocks_params, stored_recipe, with_block_params

    found = blocks_params(root)
    if found is None:
        return None
    params, manifest = found
    recipe = with_block_params(InputRecipe(), params)
    recipe.num_point = int(info["num_point"])  # points per sample the run trains on
    recipe.source = f"recorded at training from {manifest}"
    out = recipe.to_dict()
    del out["k"]  # the model's own config holds k
    stored_recipe(
        {"meta": {"input": out}}, where=str(manifest)
    )  # a recipe we cannot make fails now
    return out


class S3DISTask(PointCloudTask):
    name = "s3dis"
    description = "semantic segmentation on S3DIS blocks"
    model_task = "segmentation"
    model_hint = "resgcn28"
    checkpoint_label = "segmentation (S3DIS)"
    best_metric = "val_miou"
    throughput = "points"
    defaults: dict[str, Any] = {}  # TrainConfig's defaults are the S3DIS paper recipe
    settings = frozenset(
        {
            "init",
            "cache",
            "blocks",
            "test_area",
            "val_fraction",
            "val_min",
            "num_points",
            "max_train_samples",
            "max_val_samples",
            "label_smoothing",
            "class_weights",
            "augment",
            "num_workers",
            "sync_bn",
        }
    )
    eval_options = PointCloudTask.eval_options | {
        "area",
        "cache",
        "blocks",
        "protocol",
        "stride",
        "save_predictions",
    }

    setting_help = {
        "val_fraction": "fraction of training rooms held out for validation / best.pt (default "
        "0.1, at least 1 room)",
        "num_points": "train on a random subset of this many points per block (default: all)",
    }

    def run_name(self, cfg) -> str:
        return f"{cfg.dataset}_{cfg.model}_area{cfg.test_area}"

    # ------------------------------------------------------------------------------ data
    def _build(self, cfg) -> DataBundle:
        from pointseg.data.blocks import S3DISBlocks
        from pointseg.data.s3dis import CLASSES

        if cfg.blocks is None:
            raise ConfigError(
                "pointseg train s3dis needs --blocks <folder>: HDF5 blocks made by `pointseg blocks s3dis "
                "--cache data/s3dis --out data/s3dis_blocks` (or the published indoor3d_sem_seg_hdf5_data folder)"
            )
        root = Path(cfg.blocks)
        if not root.is_dir():
            raise DataError(
                f"blocks folder {root} does not exist; create it with `pointseg prepare s3dis --raw <raw> --out data/s3dis` "
                f"then `pointseg blocks s3dis --cache data/s3dis --out {root}`"
            )
        if cfg.cache is not None and not Path(cfg.cache).is_dir():
            raise DataError(
                f"room cache {cfg.cache} does not exist; run `pointseg prepare s3dis --raw <raw> --out {cfg.cache}`"
            )
        full = S3DISBlocks(root, split="train")
        rooms = [str(r) for r in full.rooms]
        areas = sorted({a for a in map(area_in, rooms) if a is not None})
        known = set(areas)
        test_list = root / "test" / "room_filelist.txt"
        if test_list.is_file():
            known |= {a for a in map(area_in, test_list.read_text().split()) if a is not None}
        if cfg.cache is not None:
            known |= _cache_areas(Path(cfg.cache))
        if cfg.test_area not in known:
            raise DataError(
                f"test area {cfg.test_area} has no rooms in {root}"
                + (f" or {cfg.cache}" if cfg.cache else "")
                + f" (areas found: {', '.join(map(str, sorted(known))) or 'none'}); pick one with --test-area"
            )
        train_idx = [i for i, r in enumerate(rooms) if area_in(r) != cfg.test_area]
        if not train_idx:
            raise DataError(
                f"no training blocks outside test area {cfg.test_area} in {root} (areas found: "
                f"{', '.join(map(str, areas))}); make blocks for the training areas with `pointseg blocks s3dis`"
            )
        train_rooms = sorted({rooms[i] for i in train_idx})
        val_rooms: list[str] = []
        val_idx: list[int] = []
        if cfg.val_fraction > 0:
            n_val = max(cfg.val_min, round(cfg.val_fraction * len(train_rooms)))
            if len(train_rooms) >= 2:
                # Whole rooms go to validation, so val blocks never overlap training blocks.
                val_rooms = seeded_pick(train_rooms, min(n_val, len(train_rooms) - 1), cfg.seed, 1)
                held = set(val_rooms)
                val_idx = [i for i in train_idx if rooms[i] in held]
                train_idx = [i for i in train_idx if rooms[i] not in held]
            else:
                # One training room: fall back to a block-level split (blocks overlap at stride 0.5).
                self.note(
                    f"warning: only one training room ({train_rooms[0]}); validating on a seeded "
                    f"{cfg.val_fraction:.0%} of its blocks"
                )
                n_val = min(
                    max(cfg.val_min, round(cfg.val_fraction * len(train_idx))), len(train_idx) - 1
                )
                val_idx = seeded_pick(train_idx, n_val, cfg.seed, 1) if n_val > 0 else []
                held = set(val_idx)
                train_idx = [i for i in train_idx if i not in held]
        if cfg.max_train_samples is not None and len(train_idx) > cfg.max_train_samples:
            train_idx = seeded_pick(train_idx, cfg.max_train_samples, cfg.seed, 2)
        if cfg.max_val_samples is not None and len(val_idx) > cfg.max_val_samples:
            val_idx = seeded_pick(val_idx, cfg.max_val_samples, cfg.seed, 3)
        points, _ = full[0]
        info = {
            "dataset": "s3dis",
            "cache": str(Path(cfg.cache).resolve()) if cfg.cache else None,
            "blocks": str(root.resolve()),
            "test_area": cfg.test_area,
            "train_areas": [a for a in areas if a != cfg.test_area],
            "val_rooms": val_rooms,
            "train_blocks": len(train_idx),
            "val_blocks": len(val_idx),
            # points per sample the model was trained on (whole-room evaluation uses the same)
            "num_point": int(min(cfg.num_points or points.shape[0], points.shape[0])),
        }
        from torch.utils.data import Subset

        return DataBundle(
            Subset(full, train_idx),
            Subset(full, val_idx) if val_idx else None,
            int(points.shape[-1]),
            len(CLASSES),
            list(CLASSES),
            info,
            input_recipe=_training_recipe(root, info),
        )

    def class_weights(self, cfg, data: DataBundle, device) -> torch.Tensor | None:
        """Loss weights w_c ∝ 1/sqrt(f_c) of the training labels, scaled so Σ_c f_c·w_c = 1.

        Ceiling, floor and wall hold most points of a room; without weights a short run learns
        them first and the small classes (column, board, …) late, which mIoU punishes.
        """
        if cfg.class_weights == "none":
            return None
        train = data.train
        labels = getattr(getattr(train, "dataset", None), "labels", None)
        if labels is None:
            raise ConfigError("class_weights: the training blocks carry no per-point labels")
        sel = labels[np.asarray(train.indices)]
        freq = np.bincount(sel.reshape(-1), minlength=data.num_classes).astype(np.float64)
        freq /= max(freq.sum(), 1.0)
        w = np.where(freq > 0, 1.0 / np.sqrt(np.maximum(freq, 1e-12)), 0.0)
        w /= max(float((freq * w).sum()), 1e-12)
        return torch.tensor(w, dtype=torch.float32, device=device)

    def prepare(self, x, y, cfg, generator=None, train=True):
        """A random subset of `num_points` points per block; with `augment`, a random rotation
        about z of the block-centred x, y (`pointseg.data.augment.rotate_z`, training only)."""
        x, y = x.float(), y.long()
        n = x.shape[1]
        if cfg.num_points is not None and cfg.num_points < n:
            keep = torch.randperm(n, generator=generator)[: cfg.num_points]
            x, y = x[:, keep], y[:, keep]  # (B, num_points, C), (B, num_points)
        if cfg.augment and train:
            x = rotate_z(x)
        return x, y

    # ------------------------------------------------------------------------------ evaluation
    def evaluate(self, path: Path, ckpt: dict, **options: Any) -> dict:
        from pointseg.engine.s3dis_eval import evaluate_s3dis

        if "num_points" in options:
            options["num_point"] = options.pop("num_points")
        options.setdefault("batch_size", 8)
        return evaluate_s3dis(path, **options)


def _cache_areas(cache: Path) -> set[int]:
    """Areas of the rooms in a room cache; a cache that cannot be read is a DataError."""
    from pointseg.data.s3dis import list_rooms

    try:
        rooms = list_rooms(cache, None)
    except (PointsegError, OSError, KeyError, ValueError) as exc:
        raise DataError(
            f"room cache {cache} cannot be read ({type(exc).__name__}: {exc}); rebuild it with "
            f"`pointseg prepare s3dis --raw <raw> --out {cache}` or drop --cache"
        ) from exc
    return {a for a in (area_in(r["area"]) for r in rooms) if a is not None}


register_task(S3DISTask())
