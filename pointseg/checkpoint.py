"""Checkpoints that carry their model config, so loading needs no flags (nanoGPT-style).

On-disk format (a `torch.save` dict, loadable with `torch.load(weights_only=True)`):

    {"format": "pointseg", "format_version": 1,
     "model_config": ModelConfig.to_dict(),
     "model": state_dict,
     "meta": {"task", "dataset", "classes", "pointseg_version", "torch_version", "created", ...},
     **extra}   # e.g. optimizer, scheduler, rng states, epoch, step (training engine)

Extras must themselves be `weights_only`-loadable: tensors, Python numbers / strings / lists /
dicts (no NumPy arrays or arbitrary objects).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pointseg.errors import ConfigError
from pointseg.io import atomic_write
from pointseg.models.config import ModelConfig

FORMAT = "pointseg"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model_config", "model", "meta")

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "model_from_checkpoint",
    "load_state_dict_checked",
]


def config_from_dict(d: Mapping[str, Any]):
    """`ModelConfig` (point clouds) or the config class of its ``kind`` (``graph``: general graphs,
    ``dgcnn``): the model registry's families (`pointseg.models.registry.register_kind`)."""
    from pointseg.models.registry import config_from_dict as from_dict

    return from_dict(dict(d))


def build_model(config):
    """The model of a config: `DeepGCN`, `GraphDeepGCN` or `DGCNN` (by its ``kind``)."""
    from pointseg.models.registry import build_model as build

    return build(config)


def _default_meta(config: ModelConfig) -> dict[str, Any]:
    from pointseg import __version__

    return {
        "task": config.task,
        "dataset": None,
        "classes": None,
        "pointseg_version": __version__,
        "torch_version": str(torch.__version__),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model_config: ModelConfig | Mapping[str, Any],
    model_state: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """Write a pointseg checkpoint atomically (temp file + rename); returns the path.

    `meta` entries override the defaults (task from the config, dataset/classes None, versions,
    UTC creation time). `extra` keys are stored at the top level and must not collide with the
    reserved ones.
    """
    config = model_config if hasattr(model_config, "to_dict") else config_from_dict(model_config)
    clash = sorted(set(extra) & set(REQUIRED_KEYS))
    if clash:
        raise ValueError(f"save_checkpoint: extra keys {clash} are reserved by the format")
    full_meta = _default_meta(config)
    full_meta.update(dict(meta or {}))
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": config.to_dict(),
        "model": {
            k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in model_state.items()
        },
        "meta": full_meta,
        **extra,
    }
    path = Path(path)
    with atomic_write(path) as tmp:
        torch.save(ckpt, tmp)
        # Never leave a checkpoint that `load_checkpoint` would refuse: re-read it (memory-mapped,
        # so this costs little) with the same safe unpickler before it replaces `path`.
        try:
            torch.load(tmp, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(
                f"save_checkpoint({path}): the checkpoint holds objects that "
                f"torch.load(weights_only=True) refuses ({_load_error(exc)}); store only tensors "
                f"and plain Python values in meta / extras"
            ) from None
    return path


def _load_error(exc: Exception) -> str:
    """One informative line of a torch.load failure (the unpickler's reason, if it gave one)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line:
            return line.split(". Please use")[0]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _looks_original(obj: Any) -> bool:
    state = obj.get("state_dict") if isinstance(obj, dict) else None
    if isinstance(state, dict) and any(str(k).startswith("head.gconv.") for k in state):
        return True
    # a published DGCNN model: a bare state dict (DataParallel's "module." prefix or none)
    return isinstance(obj, dict) and ("conv1.0.weight" in obj or "module.conv1.0.weight" in obj)


def validate_checkpoint(ckpt: Any, source: str = "checkpoint") -> dict[str, Any]:
    """Check the format of an in-memory checkpoint dict; ConfigError names what is wrong."""
    if not isinstance(ckpt, dict):
        raise ConfigError(
            f"{source}: not a pointseg checkpoint (a {type(ckpt).__name__}, not a dict)"
        )
    if _looks_original(ckpt):
        raise ConfigError(
            f"{source}: this is an original deep_gcns_torch checkpoint (or a published DGCNN model); "
            f"convert it first with "
            f"`pointseg convert --original {source} --out <ours.pt>`"
        )
    if ckpt.get("format") != FORMAT:
        raise ConfigError(
            f"{source}: not a pointseg checkpoint (key 'format' is {ckpt.get('format')!r}, "
            f"expected {FORMAT!r}); top-level keys: {sorted(map(str, ckpt))}"
        )
    for key in REQUIRED_KEYS:
        if key not in ckpt:
            raise ConfigError(f"{source}: pointseg checkpoint is missing key {key!r}")
    version = ckpt["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ConfigError(
            f"{source}: checkpoint format_version {version!r} is newer than this pointseg "
            f"supports ({FORMAT_VERSION}); upgrade pointseg"
        )
    if not isinstance(ckpt["model"], dict):
        raise ConfigError(f"{source}: key 'model' must be a state dict")
    try:
        config_from_dict(ckpt["model_config"])
    except ConfigError as exc:
        raise ConfigError(f"{source}: bad 'model_config': {exc}") from None
    return ckpt


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a pointseg checkpoint on the CPU (`torch.load(weights_only=True)`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a user-file problem
        raise ConfigError(
            f"{path}: cannot be read as a torch checkpoint ({_load_error(exc)})"
        ) from None
    return validate_checkpoint(ckpt, str(path))


def _strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def load_state_dict_checked(
    model: torch.nn.Module, state: Mapping[str, Any], source: str = "checkpoint"
) -> None:
    """`model.load_state_dict(state, strict=True)` with a ConfigError that names every missing,
    unexpected and wrongly shaped key (DDP's "module." prefix is stripped)."""
    state = _strip_prefix(state, "module.")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if shapes:
            parts.append(f"shape mismatches [{'; '.join(shapes)}]")
        raise ConfigError(f"{source}: state dict does not fit the model: " + ", ".join(parts))
    model.load_state_dict(state, strict=True)


def model_from_checkpoint(
    path_or_dict: str | os.PathLike | Mapping[str, Any],
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model from the stored config and load its weights; returns (model, ckpt).

    The model is on the CPU and in eval mode; move it / call `.train()` as needed.
    """
    if isinstance(path_or_dict, Mapping):
        source = "checkpoint"
        ckpt = validate_checkpoint(dict(path_or_dict), source)
    else:
        source = str(path_or_dict)
        ckpt = load_checkpoint(path_or_dict)
    model = build_model(config_from_dict(ckpt["model_config"]))
    load_state_dict_checked(model, ckpt["model"], source)
    model.eval()
    return model, ckpt
