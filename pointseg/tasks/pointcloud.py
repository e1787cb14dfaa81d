"""Point-cloud tasks (`DeepGCN` on (B, N, C) point sets): what S3DIS and ModelNet40 share.

Batches: the data order of an epoch is a pure function of (seed, epoch)
(`DistributedSampler(seed=seed).set_epoch(epoch)`, also with one process); every random draw of a
step (point subsampling, augmentation, stochastic dilation, dropout) comes from the global torch
RNG, whose state the trainer checkpoints; each DataLoader gets its own generator, so creating it
draws nothing from the global RNG (exact resume). A step's counts are summed over DDP ranks by the
trainer; validation shards the held-out samples over ranks and sums confusion matrices.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from pointseg.engine import distributed as D
from pointseg.errors import ConfigError
from pointseg.metrics import ConfusionMatrix
from pointseg.tasks.base import COMMON_EVAL_OPTIONS, StepResult, Task

# Columns of log.csv (one row per epoch). Validation metrics not defined for a task are left empty.
POINT_LOG_COLUMNS = (
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_oa",
    "val_macc",
    "val_miou",
    "time_s",
    "throughput",
    "throughput_unit",
)


@dataclass
class DataBundle:
    train: Dataset
    val: Dataset | None
    in_channels: int
    num_classes: int
    classes: list[str]
    info: dict  # recorded in checkpoint meta["data"]
    criterion: nn.Module | None = None  # set by the task (class weights on the run's device)
    input_recipe: dict | None = None  # recorded in checkpoint meta["input"] (`pointseg.recipe`)


def seeded_pick(items: list, count: int, seed: int, salt: int) -> list:
    """`count` distinct items chosen by a generator seeded from (seed, salt), in their original order."""
    rng = np.random.default_rng([seed, salt])
    chosen = rng.choice(len(items), size=count, replace=False)
    return [items[i] for i in sorted(chosen.tolist())]


def batches(order: list[int], batch: int, drop_last: bool) -> list[list[int]]:
    out = [order[i : i + batch] for i in range(0, len(order), batch)]
    if drop_last and out and len(out[-1]) < batch:
        out.pop()
    return out


class PointCloudTask(Task):
    """A `DeepGCN` task on fixed-size point sets; subclasses build the data (`_build`) and may
    subsample / augment a batch (`prepare`)."""

    model_task = ""  # ModelConfig.task the models must have: "segmentation" | "classification"
    model_hint = ""  # a preset to suggest when the model does not fit
    log_columns = POINT_LOG_COLUMNS
    eval_options = COMMON_EVAL_OPTIONS | {"batch_size", "num_points"}

    # ------------------------------------------------------------------------------ data, model
    def _build(self, cfg) -> DataBundle:  # pragma: no cover - abstract
        raise NotImplementedError

    def build_data(self, cfg, info) -> DataBundle:
        data = self._build(cfg)
        data.criterion = nn.CrossEntropyLoss(
            weight=self.class_weights(cfg, data, info.device), label_smoothing=cfg.label_smoothing
        )
        return data

    def class_weights(self, cfg, data: DataBundle, device) -> torch.Tensor | None:
        return None

    def num_samples(self, data: DataBundle, split: str) -> int:
        ds = data.train if split == "train" else data.val
        return 0 if ds is None else len(ds)

    def model_config(self, cfg, data: DataBundle):
        """The preset `cfg.model` with `cfg.model_args` applied, checked against the data."""
        from pointseg.models import get_config

        try:
            mcfg = get_config(cfg.model, **cfg.model_args)
        except TypeError as exc:
            raise ConfigError(f"bad model override in {cfg.model_args}: {exc}") from None
        if getattr(mcfg, "kind", None) == "graph" or mcfg.task != self.model_task:
            what = "graph" if getattr(mcfg, "kind", None) == "graph" else mcfg.task
            raise ConfigError(
                f"model {cfg.model!r} is a {what} model; {cfg.dataset} needs a {self.model_task} "
                f"model (e.g. --model {self.model_hint})"
            )
        if mcfg.in_channels != data.in_channels:
            raise ConfigError(
                f"model {cfg.model!r} expects {mcfg.in_channels} input channels but the {cfg.dataset} data has "
                f"{data.in_channels}; set --set model.in_channels={data.in_channels}"
            )
        mcfg = self.size_classes(cfg, mcfg, data)
        if mcfg.num_classes != data.num_classes:
            raise ConfigError(
                f"model {cfg.model!r} predicts {mcfg.num_classes} classes but the {cfg.dataset} data has "
                f"{data.num_classes}; set --set model.num_classes={data.num_classes}"
            )
        points = data.info.get("num_point") or cfg.num_points
        if points is not None and mcfg.min_points > points:
            raise ConfigError(
                f"model {cfg.model!r} needs at least k·d = {mcfg.min_points} points per sample (k={mcfg.k}, "
                f"deepest dilation {mcfg.max_dilation()}) but samples have {points}; use more points "
                f"(--num-points / blocks --num-point), a smaller k, fewer blocks or --set model.dilation=false"
            )
        return mcfg

    def build_model(self, cfg, data: DataBundle, info, resume_from=None):
        """With `init`, the architecture and weights of a checkpoint (`pointseg.pretrained`)."""
        if not cfg.init:
            return super().build_model(cfg, data, info, resume_from)
        from pointseg.pretrained import init_model

        say = print if info.rank == 0 else (lambda s: None)
        return init_model(cfg, data, resume_from=resume_from, say=say, task=self.model_task)

    def size_classes(self, cfg, mcfg, data: DataBundle):
        return mcfg

    # ------------------------------------------------------------------------------ batches
    def _rank_batch(self, cfg, info) -> int:
        return cfg.batch_size // info.world_size

    def _drop_last(self, cfg, data: DataBundle) -> bool:
        # drop_last keeps every step a full global batch (BatchNorm, and DDP == single process).
        return len(data.train) >= cfg.batch_size

    def steps_per_epoch(self, cfg, data: DataBundle, info) -> int:
        """Optimiser steps per epoch (as `train_batches` batches them: padded sampler, drop_last)."""
        n = math.ceil(len(data.train) / info.world_size)
        rb = self._rank_batch(cfg, info)
        return n // rb if self._drop_last(cfg, data) else math.ceil(n / rb)

    def train_batches(self, cfg, data: DataBundle, info, epoch: int, start: int):
        sampler = DistributedSampler(
            data.train, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed
        )
        sampler.set_epoch(epoch)
        plan = batches(list(sampler), self._rank_batch(cfg, info), self._drop_last(cfg, data))
        loader = DataLoader(
            data.train,
            batch_sampler=plan[start:],
            num_workers=cfg.num_workers,
            # Own generator: creating the iterator must not draw from the global RNG (exact resume).
            generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch),
        )
        return len(plan), iter(loader)

    def prepare(self, x: torch.Tensor, y: torch.Tensor, cfg, generator=None, train=True):
        """Point subsampling / augmentation of a batch, drawn from the global torch RNG
        (`generator` for validation: the same subsample every epoch, global RNG untouched)."""
        return x.float(), y.long()

    def training_step(self, model, batch, cfg, data: DataBundle, info) -> StepResult:
        x, y = self.prepare(*batch, cfg)
        x, y = x.to(info.device), y.to(info.device)
        logits = model(x)
        loss = data.criterion(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        with torch.no_grad():
            correct = (logits.argmax(-1) == y).sum().item()
        points = x.shape[0] * x.shape[1]
        return StepResult(loss, correct, y.numel(), samples=x.shape[0], points=points)

    # ------------------------------------------------------------------------------ validation
    def validate(self, model, cfg, data: DataBundle, info) -> dict[str, float]:
        """Validation loss and metrics over the held-out rooms/shapes, sharded over ranks, summed."""
        out = {k: float("nan") for k in ("val_loss", "val_oa", "val_macc", "val_miou")}
        if data.val is None:
            return out
        idx = list(range(info.rank, len(data.val), info.world_size))
        # Same point subsample every epoch, and the global RNG stays untouched (exact resume).
        gen = torch.Generator().manual_seed(cfg.seed)
        loader = DataLoader(
            data.val,
            batch_sampler=batches(idx, self._rank_batch(cfg, info), False),
            num_workers=cfg.num_workers,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        cm = ConfusionMatrix(data.num_classes)
        sums = torch.zeros(2, dtype=torch.float64)  # loss · count, count
        with torch.no_grad():
            for x, y in loader:
                x, y = self.prepare(x, y, cfg, generator=gen, train=False)
                x, y = x.to(info.device), y.to(info.device)
                logits = model(x)
                n = y.numel()
                loss = data.criterion(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
                sums += torch.tensor([loss.item() * n, n], dtype=torch.float64)
                cm.update(logits.argmax(-1), y)
        counts = torch.from_numpy(cm.matrix).to(info.device)
        cm = ConfusionMatrix.from_matrix(D.all_reduce_sum(counts, info).cpu().numpy())
        sums = D.all_reduce_sum(sums.to(info.device), info).cpu()
        out.update(val_loss=float(sums[0] / max(sums[1], 1)), val_oa=cm.oa(), val_macc=cm.macc())
        if self.model_task == "segmentation":
            out["val_miou"] = cm.miou()
        return out

    def checkpoint_meta(self, cfg, data: DataBundle) -> dict[str, Any]:
        meta = {
            "task": self.model_task,
            "dataset": cfg.dataset,
            "classes": data.classes,
            "data": data.info,
        }
        if data.input_recipe is not None:
            meta["input"] = data.input_recipe
        return meta

    @staticmethod
    def note(text: str) -> None:
        print(text, file=sys.stderr)


__all__ = ["DataBundle", "POINT_LOG_COLUMNS", "PointCloudTask", "batches", "seeded_pick"]
