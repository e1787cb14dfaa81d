"""The one training loop, for every task: `Trainer(cfg, info).run() -> run_dir`.

A run lives in `<out_dir>/<run>/`:

- `config.yaml`    the resolved `TrainConfig` (what `--resume` starts from)
- `last.pt`        everything needed to continue bit-for-bit: model, optimiser, scheduler, the RNG
                   states of every rank (torch CPU/CUDA, numpy, python `random`), epoch, the next batch
                   of that epoch, global step, best metric, per-epoch history and per-step losses
- `best.pt`        the model with the best *validation* metric (`Task.best_metric`, higher is
                   better: val mIoU for S3DIS, val OA for ModelNet40, the task metric for graphs);
                   validation data never comes from the test split
- `log.csv`        one row per epoch (`Task.log_columns`), `steps.csv` one row per optimiser step
- `curves.png`     loss and metric curves (`pointseg.engine.plots`), `tb/` TensorBoard events

The loop owns resume, RNG state, stop signals, `max_steps`, `save_every`, the best checkpoint,
logging, TensorBoard and DDP; the task (`pointseg.tasks.base.Task`, looked up by `cfg.dataset`)
owns data, model config, batches, the step's loss and counts, and validation. Per step, one
all-reduce sums the counts and the stop flag of every rank (a no-op at world size 1).

Exact resume: the data order of an epoch is a pure function of (seed, epoch) (the task's
`train_batches`), every random draw the loop makes comes from the global RNGs whose states are
checkpointed, so a run interrupted anywhere (end of epoch, `--save-every`, `max_steps`,
Ctrl-C/SIGTERM after the current step) and resumed reproduces the uninterrupted run's weights
exactly (tested).
"""

from __future__ import annotations

import math
import re
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from pointseg.engine import distributed as D
from pointseg.engine.config import TrainConfig, is_better
from pointseg.engine.runlog import RunLog
from pointseg.errors import ConfigError
from pointseg.io import atomic_write_text, remove_stale_temps
from pointseg.runtime.rng import rng_state, seed_everything, set_deterministic, set_rng_state
from pointseg.runtime.signals import StopSignals, TrainingInterrupted
from pointseg.tasks import get_task

ACC_KEYS = ("loss_sum", "correct", "count", "batches", "samples", "points", "time")


def param_groups(cfg: TrainConfig, model: torch.nn.Module) -> list[dict]:
    """The optimiser's parameter groups: one group decayed by ``cfg.weight_decay``, or (scope
    "first", GCN's recipe: L2 on the first layer's weights only) the input layer's parameters
    decayed and every other parameter not. The model names its input layer
    (``first_layer_parameters()``)."""
    params = list(model.parameters())
    if cfg.weight_decay_scope == "all":
        return [{"params": params, "weight_decay": cfg.weight_decay}]
    first_of = getattr(model, "first_layer_parameters", None)
    if first_of is None:
        raise ConfigError(
            f"weight_decay_scope=first: model {type(model).__name__} does not name its first "
            f"layer (graph models do); use weight_decay_scope=all"
        )
    first = {id(p) for p in first_of()}
    return [
        {"params": [p for p in params if id(p) in first], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if id(p) not in first], "weight_decay": 0.0},
    ]


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    """Optimiser over ``params`` (parameters or `param_groups`; a group's own weight decay wins)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: TrainConfig, optimizer, steps_per_epoch: int):
    """step / cosine: stepped once per epoch; warmup_cosine: once per optimiser step."""
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=cfg.epochs, eta_min=cfg.min_lr
        )
    if cfg.scheduler == "warmup_cosine":
        # Stepped after every optimiser step (not per epoch): short runs of a few epochs still
        # get a smooth decay. Linear warm-up 0 → lr, then cosine lr → min_lr at the last step.
        total = max(cfg.epochs * steps_per_epoch, 1)
        warm = min(cfg.warmup_steps, total - 1)
        floor = cfg.min_lr / cfg.lr

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / (warm + 1)
            t = min((step - warm) / max(total - warm, 1), 1.0)
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return None


PER_STEP_SCHEDULERS = ("warmup_cosine",)


class Trainer:
    """One training run of any task (use `pointseg.engine.train.train(cfg)`). Attributes are
    public for tests and the demo."""

    def __init__(
        self, cfg: TrainConfig, info: D.DistInfo, *, resume: bool = False, overwrite: bool = False
    ):
        cfg.validate()
        self.cfg = cfg
        self.info = info
        self.task = get_task(cfg.dataset)
        self.run_dir = cfg.run_dir
        self.resume = resume
        if info.world_size > 1 and not self.task.distributed:
            raise ConfigError(f"{cfg.dataset}: this task trains in one process (no torchrun)")
        if cfg.batch_size % info.world_size:
            raise ConfigError(
                f"batch_size {cfg.batch_size} is not divisible by the {info.world_size} processes; the per-rank batch is batch_size / world_size"
            )
        self.rank_batch = cfg.batch_size // info.world_size
        last = self.run_dir / "last.pt"
        if resume and not last.is_file():
            raise ConfigError(f"--resume: {last} does not exist; start the run without --resume")
        if not resume and last.is_file() and not overwrite:
            raise ConfigError(
                f"run folder {self.run_dir} already holds a run; continue it with --resume, or pick another --run, or pass --overwrite"
            )
        set_deterministic(cfg.deterministic, cfg.threads)
        seed_everything(cfg.seed + info.rank)
        self.data = self.task.build_data(cfg, info)
        self.model_config, self.model_raw = self.task.build_model(
            cfg, self.data, info, resume_from=last if resume else None
        )
        self.model = D.wrap_model(self.model_raw, info, sync_bn=cfg.sync_bn)
        self.optimizer = make_optimizer(cfg, param_groups(cfg, self.model_raw))
        self.scheduler = make_scheduler(cfg, self.optimizer, self.steps_per_epoch())
        self.epoch = 0
        self.batch = 0  # next batch of `epoch` (mid-epoch checkpoints)
        self.step = 0
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.history: list[dict] = []
        self.steps: list[list[float]] = []  # (step, fractional epoch, lr, loss)
        self.acc = self._zero_acc()
        self.log = RunLog(self.run_dir, self.task.log_columns, cfg.run_name, info.is_main)

    @property
    def writer(self):
        return self.log.writer

    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch (the task's batching: padded sampler and drop_last, graphs…)."""
        return self.task.steps_per_epoch(self.cfg, self.data, self.info)

    @staticmethod
    def _zero_acc() -> dict:
        return {k: (0 if k == "batches" else 0.0) for k in ACC_KEYS}

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------------------ checkpoint
    def _meta(self) -> dict:
        return {
            **self.task.checkpoint_meta(self.cfg, self.data),
            "epoch": self.epoch,
            "step": self.step,
            "best_metric": self.task.best_metric,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "run": self.cfg.run_name,
            # plain str: torch.__version__ is a TorchVersion, which weights_only loading rejects
            "torch_version": str(torch.__version__),
        }

    def save(self, path: Path, *, full: bool = True) -> None:
        """Write a checkpoint (collective under DDP: every rank contributes its RNG state)."""
        from pointseg.checkpoint import save_checkpoint

        rngs = D.all_gather_object(rng_state(), self.info) if full else None
        if not self.info.is_main:
            return
        self._remove_stale_temps()
        extra: dict[str, Any] = {
            "train_config": self.cfg.to_dict(),
            "epoch": self.epoch,
            "step": self.step,
        }
        if full:
            extra.update(
                optimizer=self.optimizer.state_dict(),
                scheduler=self.scheduler.state_dict() if self.scheduler else None,
                rng=rngs,
                world_size=self.info.world_size,
                batch=self.batch,
                best=self.best,
                best_epoch=self.best_epoch,
                history=self.history,
                steps=self.steps,
                epoch_acc=self.acc,
            )
        save_checkpoint(
            path,
            model_config=self.model_config,
            model_state=D.unwrap_model(self.model).state_dict(),
            meta=self._meta(),
            **extra,
        )

    def _remove_stale_temps(self) -> None:
        """Drop `.last.pt.*.tmp` / `.best.pt.*.tmp` of a writer killed mid-save (SIGKILL)."""
        for name in ("last.pt", "best.pt"):
            for tmp in remove_stale_temps(self.run_dir / name):
                print(f"removed stale temporary checkpoint {tmp}", file=sys.stderr)

    def load(self, path: Path) -> None:
        from pointseg.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        missing = [
            k for k in ("optimizer", "rng", "epoch", "batch", "step", "history") if k not in ckpt
        ]
        if missing:
            raise ConfigError(
                f"{path} is not a resumable training checkpoint (missing {', '.join(missing)})"
            )
        D.unwrap_model(self.model).load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler"):
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.epoch, self.batch, self.step = (
            int(ckpt["epoch"]),
            int(ckpt["batch"]),
            int(ckpt["step"]),
        )
        self.best, self.best_epoch = ckpt.get("best"), ckpt.get("best_epoch")
        self.history = list(ckpt["history"])
        self.steps = [list(s) for s in ckpt.get("steps", [])]
        self.acc = {**self._zero_acc(), **dict(ckpt.get("epoch_acc") or {})}
        rngs = ckpt["rng"]
        if len(rngs) != self.info.world_size:
            print(
                f"warning: checkpoint was written by {len(rngs)} processes, resuming with {self.info.world_size}: RNG streams differ from an uninterrupted run",
                file=sys.stderr,
            )
        self._rng_to_restore = rngs[self.info.rank % len(rngs)]

    def write_logs(self, plot: bool | None = None) -> None:
        """log.csv, steps.csv and curves.png from the in-memory history (rank 0)."""
        self.log.write(self.history, self.steps, plot=plot)

    # ------------------------------------------------------------------------------ loop
    def run(self) -> Path:
        cfg, info, task = self.cfg, self.info, self.task
        if self.resume:
            self.load(self.run_dir / "last.pt")
        if info.is_main:
            self._remove_stale_temps()
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.yaml", cfg.to_yaml())
            self.log.open_tensorboard(
                cfg.tensorboard, purge_step=self.step if self.resume else None
            )
            n_par = sum(p.numel() for p in self.model_raw.parameters())
            n_train = task.num_samples(self.data, "train")
            n_val = task.num_samples(self.data, "val")
            print(
                f"run {self.run_dir}: {cfg.model} ({n_par:,} parameters) on {cfg.dataset}, "
                f"{n_train} train / {n_val} val {task.sample_noun}, batch {cfg.batch_size}"
                f" ({info.world_size} process{'es' if info.world_size > 1 else ''}, {info.device})"
                + (f", resuming at epoch {self.epoch + 1} step {self.step}" if self.resume else ""),
                file=sys.stderr,
            )
        restored = getattr(self, "_rng_to_restore", None)
        if restored is not None:
            set_rng_state(restored)  # last thing before the loop: nothing may draw in between
        self.model.train()
        try:
            if cfg.max_steps is not None and self.step >= cfg.max_steps:
                # Resumed at its limit (the saved config keeps max_steps): the loop below would take
                # one step before checking it.
                if info.is_main:
                    print(
                        f"max_steps={cfg.max_steps} already reached (step {self.step} in "
                        f"{self.run_dir / 'last.pt'}); nothing to train: continue with --resume "
                        "--max-steps N (N > the current step) or --set max_steps=null",
                        file=sys.stderr,
                    )
                return self.run_dir
            with StopSignals() as stop:
                while self.epoch < cfg.epochs:
                    status = self._train_epoch(stop)
                    if status is not None:
                        return status
                    self._end_epoch()
        finally:
            self.log.close()
        if info.is_main:
            best = (
                "n/a (no validation split)"
                if self.best is None
                else f"{self.best:.4f} (epoch {self.best_epoch})"
            )
            print(
                f"done: best {task.best_label} {best}; checkpoints in {self.run_dir}",
                file=sys.stderr,
            )
        return self.run_dir

    def _train_epoch(self, stop: StopSignals) -> Path | None:
        cfg, info, task = self.cfg, self.info, self.task
        start = self.batch
        total, batches = task.train_batches(cfg, self.data, info, self.epoch, start)
        unit = "pts/s" if task.throughput == "points" else "samples/s"
        bar = tqdm(
            total=total,
            initial=start,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            unit="batch",
            disable=not (cfg.progress and info.is_main) or total < 2,
            leave=False,
            dynamic_ncols=True,
        )
        t_last = time.perf_counter()
        for b, batch in enumerate(batches, start=start):
            out = task.training_step(self.model, batch, cfg, self.data, info)
            self.optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            if cfg.scheduler in PER_STEP_SCHEDULERS:
                self.scheduler.step()
            self.step += 1
            self.batch = b + 1
            n = out.count
            # One all-reduce per step: summed loss·n, correct, count and the stop flag of every rank.
            red = torch.tensor(
                [
                    out.loss.item() * n,
                    out.correct,
                    n,
                    out.samples,
                    out.points,
                    1.0 if stop.signum else 0.0,
                ],
                dtype=torch.float64,
            )
            red = D.all_reduce_sum(red.to(info.device), info).cpu()
            now = time.perf_counter()
            a = self.acc
            a["loss_sum"] += red[0].item()
            a["correct"] += red[1].item()
            a["count"] += red[2].item()
            a["samples"] += red[3].item()
            a["points"] += red[4].item()
            a["batches"] += 1
            a["time"] += now - t_last
            t_last = now
            step_loss = red[0].item() / max(red[2].item(), 1e-12)
            self.steps.append(
                [float(self.step), self.epoch + self.batch / max(total, 1), self.lr, step_loss]
            )
            rate = a[task.throughput] / max(a["time"], 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.4f}", **{unit.replace("/", "_per_"): f"{rate:,.0f}"})
            self.log.scalar("train/loss_step", step_loss, self.step)
            if red[5].item() > 0:
                bar.close()
                self.save(self.run_dir / "last.pt")
                self.write_logs(plot=True)
                signum = stop.signum or signal.SIGTERM  # another rank was signalled
                raise TrainingInterrupted(signum, self.run_dir, self.epoch, self.step)
            if cfg.max_steps is not None and self.step >= cfg.max_steps:
                bar.close()
                self.save(self.run_dir / "last.pt")
                self.write_logs(plot=True)
                if info.is_main:
                    print(
                        f"max_steps={cfg.max_steps} reached at epoch {self.epoch + 1}; saved {self.run_dir / 'last.pt'} (continue with --resume)",
                        file=sys.stderr,
                    )
                return self.run_dir
            if cfg.save_every and self.step % cfg.save_every == 0:
                self.save(self.run_dir / "last.pt")
        bar.close()
        return None

    def validate(self) -> dict:
        """The task's validation columns, with the plain module in eval mode (no gradient sync)."""
        self.model.eval()
        try:
            return self.task.validate(D.unwrap_model(self.model), self.cfg, self.data, self.info)
        finally:
            self.model.train()

    def _end_epoch(self) -> None:
        cfg, info, task = self.cfg, self.info, self.task
        a = self.acc
        lr = self.lr
        row: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "step": self.step,
            "lr": lr,
            "train_loss": a["loss_sum"] / max(a["count"], 1),
            "train_acc": a["correct"] / max(a["count"], 1),
            **task.log_constants(),
            "time_s": a["time"],
            "throughput": a[task.throughput] / max(a["time"], 1e-9),
            "throughput_unit": f"{task.throughput}/s",
        }
        row.update({k: float("nan") for k in task.log_columns if k.startswith("val_")})
        last_epoch = self.epoch + 1 == cfg.epochs
        if (self.epoch + 1) % cfg.eval_every == 0 or last_epoch:
            row.update(self.validate())
        if self.scheduler is not None and cfg.scheduler not in PER_STEP_SCHEDULERS:
            with warnings.catch_warnings():
                # After a resume at the end of an epoch this process has taken no optimiser step,
                # but the run has (before the checkpoint): torch's order check does not apply.
                if self.step > 0:
                    warnings.filterwarnings(
                        "ignore", re.escape("Detected call of `lr_scheduler.step()`")
                    )
                self.scheduler.step()
        self.history.append(row)
        key = task.best_metric
        improved = is_better(row[key], self.best)
        if improved:
            self.best, self.best_epoch = row[key], self.epoch + 1
        self.epoch += 1
        self.batch = 0
        self.acc = self._zero_acc()
        self.save(self.run_dir / "last.pt")
        no_val = task.num_samples(self.data, "val") == 0
        if improved or (no_val and info.is_main):
            # Without a validation split best.pt is simply the latest model.
            self.save(self.run_dir / "best.pt", full=False)
        if info.is_main:
            self.write_logs(plot=True if last_epoch else None)
            self.log.epoch_scalars(row, self.epoch)
            val = (
                ""
                if not math.isfinite(row[key])
                else f", {task.best_label} {row[key]:.4f}" + (" (best)" if improved else "")
            )
            print(
                f"epoch {self.epoch}/{cfg.epochs}: loss {row['train_loss']:.4f}, acc {row['train_acc']:.4f}{val}, "
                f"lr {lr:.2e}, {row['time_s']:.1f}s, {row['throughput']:,.0f} {row['throughput_unit']}",
                file=sys.stderr,
            )


__all__ = ["Trainer", "TrainingInterrupted", "make_optimizer", "make_scheduler", "param_groups"]
