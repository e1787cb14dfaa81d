"""Reading a checkpoint for evaluation and prediction: where it is, its model, the training run's
settings it records, and which source each setting came from.

A checkpoint (`pointseg.checkpoint`) carries its model config and `meta["data"]` (written by the
trainer: the data roots, test area, `num_point` — points per sample the model was trained on).
Its run folder may also hold the run's `config.yaml` (`TrainConfig`, where the same number is
called `num_points`) and the HDF5 blocks' `manifest.json`. `num_point_setting` reads them in one
order and says which one it used, so a moved checkpoint never silently falls back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from pointseg.errors import ConfigError, DataError


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


def load_model(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, checkpoint dict); a checkpoint that does not build is a ConfigError."""
    from pointseg.checkpoint import model_from_checkpoint

    try:
        return model_from_checkpoint(path)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot load checkpoint {path}: {exc}") from exc


def model_config_dict(ckpt: dict[str, Any]) -> dict[str, Any]:
    cfg = ckpt.get("model_config", {})
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


def checkpoint_meta(ckpt: dict[str, Any]) -> dict[str, Any]:
    return dict(ckpt.get("meta") or {})


def meta_data(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The training run's data settings (`meta["data"]`, written by the trainer)."""
    meta = checkpoint_meta(ckpt)
    data = dict(meta.get("data") or {})
    for key in ("test_area", "cache", "blocks", "num_point"):  # tolerate flat meta as well
        if key not in data and key in meta:
            data[key] = meta[key]
    return data


def checkpoint_task(ckpt: dict[str, Any]) -> str:
    """ "s3dis" for point-cloud segmentation checkpoints, "modelnet40" for classification ones."""
    task = model_config_dict(ckpt).get("task") or checkpoint_meta(ckpt).get("task")
    return "modelnet40" if task == "classification" else "s3dis"


def run_config(path: Path) -> dict[str, Any]:
    """The training run's resolved config (`config.yaml` next to the checkpoint), or {} when the
    checkpoint has none (e.g. moved on its own). A config.yaml that cannot be read is an error."""
    import yaml

    cfg_path = Path(path).parent / "config.yaml"
    if not cfg_path.is_file():
        return {}
    try:
        cfg = yaml.safe_load(cfg_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"{cfg_path} (the training run's config next to {Path(path).name}) cannot be read: "
            f"{exc}; fix or remove it"
        ) from None
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise ConfigError(
            f"{cfg_path}: expected a mapping of config keys, got {type(cfg).__name__}"
        )
    return cfg


def blocks_num_point(root: Path) -> int | None:
    """Points per block of an HDF5 blocks root: its manifest, else the first HDF5 file's shape."""
    from pointseg.recipe import blocks_params

    found = blocks_params(root)
    if found is not None and "num_point" in found[0]:
        return int(found[0]["num_point"])
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


def recorded_setting(
    given: Any, flag: str, data: dict[str, Any], keys: tuple[str, ...], default: Any
) -> tuple[Any, str]:
    """(value, source) of an evaluation setting: the command line (`flag`), else the first of
    `keys` the checkpoint's `meta["data"]` records, else `default`."""
    if given is not None:
        return given, flag
    for key in keys:
        if data.get(key) is not None:
            return data[key], f"the checkpoint (meta.data.{key})"
    return default, "the default"


def num_point_setting(
    path: Path,
    ckpt: dict[str, Any],
    given: int | None,
    default: int,
    blocks_root: Path | None = None,
) -> tuple[int, str]:
    """Points per sample for evaluating `ckpt`, and where the number came from: the command line,
    the checkpoint (`meta["data"]["num_point"]`, what the trainer writes), the run's config.yaml
    (`num_points`), the blocks (`blocks_root`), else `default`."""
    if given:
        return int(given), "--num-points"
    data = meta_data(ckpt)
    if data.get("num_point"):
        return int(data["num_point"]), "the checkpoint (meta.data.num_point)"
    saved = run_config(path).get("num_points")
    if saved:
        return int(saved), f"the run's config.yaml (num_points) in {Path(path).parent}"
    if blocks_root is not None:
        n = blocks_num_point(blocks_root)
        if n:
            return n, f"the blocks in {blocks_root}"
    return int(default), "the default"


__all__ = [
    "blocks_num_point",
    "checkpoint_meta",
    "checkpoint_task",
    "load_model",
    "meta_data",
    "model_config_dict",
    "num_point_setting",
    "recorded_setting",
    "resolve_checkpoint",
    "run_config",
]
