"""`pointseg eval` of a graph-task checkpoint: the task metric on a split, written to
``metrics.json`` = {"task", "dataset", "split", "metric", "value", …}."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pointseg.engine.checkpoints import resolve_checkpoint
from pointseg.engine.report import write_json
from pointseg.errors import ConfigError
from pointseg.runtime import resolve_device


def is_graph_checkpoint(ckpt: dict[str, Any]) -> bool:
    cfg = ckpt.get("model_config") or {}
    return isinstance(cfg, dict) and cfg.get("kind") == "graph"


def evaluate_graph_checkpoint(
    checkpoint: str | Path,
    *,
    task: Any,
    ckpt: dict[str, Any] | None = None,
    data: str | None = None,
    out: str | None = None,
    split: str = "test",
    batch_size: int | None = None,
    device: str | None = None,
    views: int | None = None,
    parts: int | None = None,
    seed: int | None = None,
    progress: bool = True,
    **unused: Any,
) -> dict[str, Any]:
    """Score `split` of a graph task with a checkpoint (a run folder → its best.pt); writes
    ``metrics.json`` and prints it as the last line (one JSON object).

    ``views`` / ``parts`` / ``seed``: node tasks' multi-view inference (mean logits of `views`
    random node partitions into `parts` parts, drawn from `seed`); default: the task's setting for
    the split (`Task.inference`; ogbn-proteins test: 10 views of 3 parts), seed 0.
    `task`: the checkpoint's graph task (`pointseg.tasks.task_for_checkpoint`)."""
    from pointseg.checkpoint import load_checkpoint, model_from_checkpoint

    del progress  # one forward pass per split: no progress bar
    path = resolve_checkpoint(checkpoint)
    if ckpt is None:
        ckpt = load_checkpoint(path)
    dataset = (ckpt.get("meta") or {}).get("dataset")
    if not is_graph_checkpoint(ckpt) or dataset != task.name:
        raise ConfigError(
            f"{path} is a point-cloud ({dataset}) checkpoint, not a graph-task one; evaluate it "
            "with `pointseg eval --checkpoint` and the S3DIS / ModelNet options"
        )
    bad = sorted(k for k, v in unused.items() if v not in (None, False))
    if bad:
        flags = ", ".join("--" + k.replace("_", "-") for k in bad)
        raise ConfigError(f"{path} is a {dataset} checkpoint; {flags} do not apply to graph tasks")
    if batch_size is not None and task.level == "node":
        raise ConfigError(
            f"{path} is a {dataset} checkpoint (a node task, evaluated on the full graph); "
            "--batch-size does not apply to it"
        )
    meta_data = (ckpt.get("meta") or {}).get("data") or {}
    root = data or meta_data.get("root")
    graph_data = task.load(task.resolve_root(root))
    model, _ = model_from_checkpoint(ckpt)
    if (
        model.config.node_encoder in ("linear", "none")
        and model.config.in_channels != graph_data.in_channels
    ):
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


__all__ = ["evaluate_graph_checkpoint", "is_graph_checkpoint"]
