"""Training and evaluation of the general-graph tasks (`pointseg.tasks`) with the point-cloud run layout.

`GraphTrainer` is the engine's `Trainer` with the task interface in place of the S3DIS/ModelNet
data code: the run folder, config.yaml, last.pt / best.pt (best on the validation split), log.csv,
steps.csv, curves.png, TensorBoard, exact resume, SIGINT/SIGTERM handling, optimisers and
schedulers are the `Trainer`'s own. What differs is where batches come from (`Task.batches`: the
whole graph per step for node tasks, shuffled mini-batches of graphs for graph tasks, ordered by a
generator seeded from (seed, epoch), so a resumed run sees the same order) and the metric
(`Task.score`, logged as ``val_metric`` next to ``val_loss``).

`evaluate_graph_checkpoint` scores the test split with the best checkpoint and writes
``metrics.json`` = {"task", "dataset", "split", "metric", "value", …}.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from pointseg.engine import distributed as D
from pointseg.engine.train import (
    LOG_COLUMNS,
    Trainer,
    _StopSignals,
    is_better,
    seed_everything,
    set_rng_state,
)
from pointseg.errors import ConfigError
from pointseg.io import atomic_write_text

GRAPH_LOG_COLUMNS = (*LOG_COLUMNS[:6], "val_metric", "metric", *LOG_COLUMNS[9:])


class GraphTrainer(Trainer):
    """One training run of a graph task (use `pointseg.engine.train.train(cfg)`)."""

    log_columns = GRAPH_LOG_COLUMNS

    def __init__(
        self, cfg, info: D.DistInfo, *, resume: bool = False, overwrite: bool = False
    ) -> None:
        from pointseg.checkpoint import build_model
        from pointseg.tasks import get_task

        cfg.validate()
        if info.world_size > 1:
            raise ConfigError(f"{cfg.dataset}: graph tasks train in one process (no torchrun)")
        self.cfg, self.info, self.run_dir, self.resume = cfg, info, cfg.run_dir, resume
        self.task = get_task(cfg.dataset)
        self.rank_batch = cfg.batch_size
        last = self.run_dir / "last.pt"
        if resume and not last.is_file():
            raise ConfigError(f"--resume: {last} does not exist; start the run without --resume")
        if not resume and last.is_file() and not overwrite:
            raise ConfigError(
                f"run folder {self.run_dir} already holds a run; continue it with --resume, or "
                "pick another --run, or pass --overwrite"
            )
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.set_num_threads(cfg.threads or 1)
        elif cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed)
        self.data = self.task.load(self.task.resolve_root(cfg.data))
        self.model_config = self.task.model_config(cfg.model, dict(cfg.model_args), self.data)
        self.model_raw = self.model = build_model(self.model_config).to(info.device)
        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        self.epoch = self.batch = self.step = 0
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.history: list[dict] = []
        self.steps: list[list[float]] = []
        self.acc = self._zero_acc()
        self.writer = None

    def _meta(self) -> dict:
        return {
            "task": f"{self.task.level}-level {self.task.metric}",
            "graph_task": self.task.name,
            "dataset": self.cfg.dataset,
            "metric": self.task.metric,
            "classes": self.data.classes,
            "data": self.data.info,
            "epoch": self.epoch,
            "step": self.step,
            "best_metric": "val_metric",
            "best": self.best,
            "best_epoch": self.best_epoch,
            "run": self.cfg.run_name,
            "torch_version": str(torch.__version__),
        }

    def _to(self, batch):
        batch.graph = batch.graph.to(self.info.device)
        if batch.mask is not None:
            batch.mask = batch.mask.to(self.info.device)
        return batch

    def _outputs(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.task.forward(self.model, batch.graph)
        if batch.mask is not None:
            logits = logits[batch.mask]
        return logits, self.task.target(batch)

    def evaluate_split(self, split: str) -> dict:
        """Loss and metric of `split` with the model in eval mode (no global RNG is drawn;
        `Task.predict`: full graph, batches, or the task's partitioned / multi-view inference)."""
        self.model.eval()
        lo, y = self.task.predict(
            self.model,
            self.data,
            split,
            batch_size=self.cfg.batch_size,
            device=self.info.device,
            seed=self.cfg.seed,  # partitioned inference: the same partitions every epoch
        )
        self.model.train()
        return {"loss": float(self.task.loss(lo, y)), "metric": float(self.task.score(lo, y))}

    def validate(self) -> dict:
        if self.data.num_samples("val") == 0:
            return {"val_loss": float("nan"), "val_metric": float("nan")}
        r = self.evaluate_split("val")
        return {"val_loss": r["loss"], "val_metric": r["metric"]}

    def run(self) -> Path:
        cfg = self.cfg
        if self.resume:
            self.load(self.run_dir / "last.pt")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "config.yaml", cfg.to_yaml())
        self._open_tensorboard()
        n_par = sum(p.numel() for p in self.model.parameters())
        print(
            f"run {self.run_dir}: {cfg.model} ({n_par:,} parameters) on {cfg.dataset}, "
            f"{self.data.num_samples('train')} train / {self.data.num_samples('val')} val "
            f"{'nodes' if self.task.level == 'node' else 'graphs'} ({self.info.device})"
            + (f", resuming at epoch {self.epoch + 1} step {self.step}" if self.resume else ""),
            file=sys.stderr,
        )
        restored = getattr(self, "_rng_to_restore", None)
        if restored is not None:
            set_rng_state(restored)
        self.model.train()
        try:
            if cfg.max_steps is not None and self.step >= cfg.max_steps:
                # Resumed at its limit (the saved config keeps max_steps): no step beyond it.
                print(
                    f"max_steps={cfg.max_steps} already reached (step {self.step} in "
                    f"{self.run_dir / 'last.pt'}); nothing to train: continue with --resume "
                    "--max-steps N (N > the current step) or --set max_steps=null",
                    file=sys.stderr,
                )
                return self.run_dir
            with _StopSignals() as stop:
                while self.epoch < cfg.epochs:
                    gen = torch.Generator().manual_seed(cfg.seed * 100003 + self.epoch)
                    batches = self.task.batches(
                        self.data, "train", batch_size=cfg.batch_size, generator=gen
                    )
                    status = self._train_epoch(batches, stop)
                    if status is not None:
                        return status
                    self._end_epoch()
        finally:
            if self.writer is not None:
                self.writer.close()
        best = "n/a" if self.best is None else f"{self.best:.4f} (epoch {self.best_epoch})"
        print(
            f"done: best val {self.task.metric} {best}; checkpoints in {self.run_dir}",
            file=sys.stderr,
        )
        return self.run_dir

    def _train_epoch(self, batches, stop: _StopSignals) -> Path | None:
        from pointseg.engine.train import TrainingInterrupted

        cfg = self.cfg
        bar = tqdm(
            total=len(batches),
            initial=self.batch,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            unit="batch",
            disable=not cfg.progress or len(batches) < 2,
            leave=False,
            dynamic_ncols=True,
        )
        t_last = time.perf_counter()
        for b in range(self.batch, len(batches)):
            logits, y = self._outputs(self._to(batches[b]))
            loss = self.task.loss(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self.step += 1
            self.batch = b + 1
            with torch.no_grad():
                correct, count = self.task.correct(logits, y)
            now = time.perf_counter()
            a = self.acc
            a["loss_sum"] += loss.item() * count
            a["correct"] += correct
            a["count"] += count
            a["samples"] += float(y.shape[0])
            a["batches"] += 1
            a["time"] += now - t_last
            t_last = now
            self.steps.append(
                [float(self.step), self.epoch + self.batch / len(batches), self.lr, loss.item()]
            )
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if stop.signum or (cfg.max_steps is not None and self.step >= cfg.max_steps):
                bar.close()
                self.save(self.run_dir / "last.pt")
                self.write_logs(plot=True)
                if stop.signum:
                    raise TrainingInterrupted(stop.signum, self.run_dir, self.epoch, self.step)
                print(
                    f"max_steps={cfg.max_steps} reached; saved {self.run_dir / 'last.pt'} "
                    "(continue with --resume)",
                    file=sys.stderr,
                )
                return self.run_dir
            if cfg.save_every and self.step % cfg.save_every == 0:
                self.save(self.run_dir / "last.pt")
        bar.close()
        return None

    def _end_epoch(self) -> None:
        cfg, a = self.cfg, self.acc
        row: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "step": self.step,
            "lr": self.lr,
            "train_loss": a["loss_sum"] / max(a["count"], 1),
            "train_acc": a["correct"] / max(a["count"], 1),
            "metric": self.task.metric,
            "time_s": a["time"],
            "throughput": a["samples"] / max(a["time"], 1e-9),
            "throughput_unit": "samples/s",
            "val_loss": float("nan"),
            "val_metric": float("nan"),
        }
        last_epoch = self.epoch + 1 == cfg.epochs
        if (self.epoch + 1) % cfg.eval_every == 0 or last_epoch:
            row.update(self.validate())
        if self.scheduler is not None:
            self.scheduler.step()
        self.history.append(row)
        improved = is_better(row["val_metric"], self.best)
        if improved:
            self.best, self.best_epoch = row["val_metric"], self.epoch + 1
        self.epoch += 1
        self.batch = 0
        self.acc = self._zero_acc()
        self.save(self.run_dir / "last.pt")
        if improved or self.data.num_samples("val") == 0:
            self.save(self.run_dir / "best.pt", full=False)
        self.write_logs(plot=True if last_epoch else None)
        if self.writer is not None:
            for k in ("train_loss", "train_acc", "val_loss", "val_metric", "lr"):
                v = row.get(k)
                if isinstance(v, float) and math.isfinite(v):
                    self.writer.add_scalar(k.replace("_", "/", 1), v, self.epoch)
            self.writer.flush()
        val = (
            f", val {self.task.metric} {row['val_metric']:.4f}" + (" (best)" if improved else "")
            if math.isfinite(row["val_metric"])
            else ""
        )
        if cfg.progress or last_epoch or improved:
            print(
                f"epoch {self.epoch}/{cfg.epochs}: loss {row['train_loss']:.4f}{val}",
                file=sys.stderr,
            )


def is_graph_checkpoint(ckpt: dict[str, Any]) -> bool:
    cfg = ckpt.get("model_config") or {}
    return isinstance(cfg, dict) and cfg.get("kind") == "graph"


def evaluate_graph_checkpoint(
    checkpoint: str | Path,
    *,
    data: str | None = None,
    out: str | None = None,
    split: str = "test",
    batch_size: int | None = None,
    device: str | None = None,
    views: int | None = None,
    parts: int | None = None,
    seed: int | None = None,
    **unused: Any,
) -> dict[str, Any]:
    """Score `split` of a graph task with a checkpoint (a run folder → its best.pt); writes
    ``metrics.json`` and prints it as the last line (one JSON object).

    ``views`` / ``parts`` / ``seed``: node tasks' multi-view inference (mean logits of `views`
    random node partitions into `parts` parts, drawn from `seed`); default: the task's setting for
    the split (`Task.inference`; ogbn-proteins test: 10 views of 3 parts), seed 0."""
    from pointseg.checkpoint import load_checkpoint, model_from_checkpoint
    from pointseg.engine.evaluate import resolve_checkpoint, resolve_device
    from pointseg.engine.report import write_json
    from pointseg.tasks import get_task, is_graph_task

    path = resolve_checkpoint(checkpoint)
    ckpt = load_checkpoint(path)
    dataset = (ckpt.get("meta") or {}).get("dataset")
    if not is_graph_checkpoint(ckpt) or not is_graph_task(dataset):
        raise ConfigError(
            f"{path} is a point-cloud ({dataset}) checkpoint, not a graph-task one; evaluate it "
            "with `pointseg eval --checkpoint` and the S3DIS / ModelNet options"
        )
    bad = sorted(k for k, v in unused.items() if v not in (None, False))
    if bad:
        flags = ", ".join("--" + k.replace("_", "-") for k in bad)
        raise ConfigError(f"{path} is a {dataset} checkpoint; {flags} do not apply to graph tasks")
    task = get_task(dataset)
    meta_data = (ckpt.get("meta") or {}).get("data") or {}
    root = data or meta_data.get("root")
    graph_data = task.load(task.resolve_root(root))
    model, _ = model_from_checkpoint(ckpt)
    if model.config.node_encoder == "linear" and model.config.in_channels != graph_data.in_channels:
        raise ConfigError(
            f"{path}: the model takes {model.config.in_channels} node features but the "
            f"{dataset} data under {root} has {graph_data.in_channels}"
        )
    dev = resolve_device(device)
    model.to(dev).eval()
    train_cfg = ckpt.get("train_config") or {}
    bs = batch_size or int(train_cfg.get("batch_size") or 32)
    n_views, n_parts = task.inference_setting(split, views, parts)
    seed = 0 if seed is None else int(seed)
    lo, y = task.predict(
        model, graph_data, split, batch_size=bs, device=dev, views=n_views, parts=n_parts, seed=seed
    )
    metrics = {
        "task": task.name,
        "dataset": dataset,
        "split": split,
        "metric": task.metric,
        "value": float(task.score(lo, y)),
        "loss": float(task.loss(lo, y)),
        "samples": int(y.shape[0]),
        "checkpoint": str(path),
        "epoch": (ckpt.get("meta") or {}).get("epoch"),
    }
    if (n_views, n_parts) != (1, 1):
        metrics.update(views=n_views, parts=n_parts, seed=seed)
    out_dir = Path(out) if out else path.parent / f"eval_{split}"
    write_json(out_dir / "metrics.json", metrics)
    print(
        f"{dataset} {split} {task.metric}: {metrics['value']:.4f}; wrote {out_dir}", file=sys.stderr
    )
    print(json.dumps(metrics))
    return metrics
