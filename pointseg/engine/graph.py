"""Kept for earlier imports: graph tasks train with the one `Trainer`
(`pointseg.engine.trainer`) and are evaluated through their task (`pointseg.engine.graph_eval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pointseg.engine.graph_eval import is_graph_checkpoint


def evaluate_graph_checkpoint(checkpoint: str | Path, **options: Any) -> dict[str, Any]:
    """`pointseg eval` of a graph-task checkpoint (its task looked up in the registry)."""
    from pointseg.checkpoint import load_checkpoint
    from pointseg.engine import graph_eval
    from pointseg.engine.checkpoints import resolve_checkpoint
    from pointseg.tasks import task_for_checkpoint

    path = resolve_checkpoint(checkpoint)
    ckpt = load_checkpoint(path)
    return graph_eval.evaluate_graph_checkpoint(
        path, ckpt=ckpt, task=task_for_checkpoint(ckpt), **options
    )


__all__ = ["evaluate_graph_checkpoint", "is_graph_checkpoint"]
