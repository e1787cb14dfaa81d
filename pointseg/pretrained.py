"""Start training from a checkpoint's weights: `pointseg train s3dis --init <checkpoint>`.

The architecture is the checkpoint's own (its stored config; `--set model.<key>=` may change what
does not touch the weights, e.g. dropout), so a converted published model (`pointseg convert`) is
fine-tuned as it is. Every backbone weight loads strictly: a missing, unexpected or wrongly shaped
key is an error that names it. When the data has another number of classes than the checkpoint,
the classifier (the last layer, ``head.classifier.*``) is re-initialised and that is said; nothing
else is ever dropped. This is how a few labelled scans of one's own adapt a pretrained model.

`--resume` continues a run started with `--init` from its `last.pt` (the model config stored there,
the weights trained so far); the init checkpoint is not read again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pointseg.errors import ConfigError

__all__ = ["CLASSIFIER_PREFIX", "init_model"]

# The only keys `--init` may leave to the new model's own initialisation (class count changed).
CLASSIFIER_PREFIX = "head.classifier."


def init_model(
    cfg: Any,
    data: Any,
    *,
    resume_from: str | Path | None = None,
    say: Callable[[str], None] = print,
    task: str | None = None,
) -> tuple[Any, torch.nn.Module]:
    """(model config, model) of a run with ``cfg.init`` set (see the module docstring).

    `cfg` needs ``init``, ``dataset`` and ``model_args``; `task` is the model task the run trains
    ("segmentation" | "classification", default ``cfg.task``); `data` ``in_channels``,
    ``num_classes``, ``classes`` and ``info``. With `resume_from` (the run's last.pt) the config is
    taken from there and the weights are left to the resume.
    """
    from pointseg.checkpoint import (
        build_model,
        config_from_dict,
        load_checkpoint,
        load_state_dict_checked,
    )

    if resume_from is not None:
        config = config_from_dict(load_checkpoint(resume_from)["model_config"])
        return config, build_model(config)
    source = str(cfg.init)
    src = load_checkpoint(source)
    config = config_from_dict(src["model_config"])
    if getattr(config, "kind", None) == "graph":
        raise ConfigError(f"--init {source}: a graph-task checkpoint cannot start {cfg.dataset}")
    task = task or cfg.task
    if config.task != task:
        raise ConfigError(
            f"--init {source}: a {config.task} model; {cfg.dataset} trains a {task} model"
        )
    if config.in_channels != data.in_channels:
        raise ConfigError(
            f"--init {source}: the model takes {config.in_channels} input channels but the "
            f"{cfg.dataset} data has {data.in_channels}"
        )
    if cfg.model_args:
        try:
            config = config.replace(**cfg.model_args)
        except TypeError as exc:
            raise ConfigError(f"bad model override in {cfg.model_args}: {exc}") from None
    old_classes = config.num_classes
    replaced = old_classes != data.num_classes
    if replaced:
        config = config.replace(num_classes=data.num_classes)
    points = data.info.get("num_point") or getattr(cfg, "num_points", None)
    if points is not None and config.min_points > points:
        raise ConfigError(
            f"--init {source}: the model needs at least {config.min_points} points per sample, "
            f"the samples have {points}"
        )
    model = build_model(config)
    state = dict(src["model"])
    if replaced:
        ours = {k: v for k, v in model.state_dict().items() if not k.startswith(CLASSIFIER_PREFIX)}
        state = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIX)}
        carrier = _Subset(ours)
        load_state_dict_checked(carrier, state, f"--init {source}")  # strict on the backbone
        model.load_state_dict(state, strict=False)
        say(
            f"--init {source}: loaded every backbone weight; the classifier was re-initialised "
            f"({old_classes} classes in the checkpoint, {data.num_classes} in the data: "
            f"{', '.join(map(str, data.classes))})"
        )
    else:
        load_state_dict_checked(model, state, f"--init {source}")
        say(f"--init {source}: loaded every weight ({_describe(config)})")
    return config, model


class _Subset(torch.nn.Module):
    """A module whose state dict is `state` (to check keys and shapes with the strict loader)."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self._state = state

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return self._state

    def load_state_dict(self, state: Any, strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        return None  # the keys were checked; the real model loads them


def _describe(config: Any) -> str:
    kind = getattr(config, "kind", None) or "deepgcn"
    return f"{kind}, {config.num_blocks} graph layers, k={config.k}, {config.num_classes} classes"
