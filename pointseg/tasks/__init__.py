"""The task registry: every `pointseg train <task>` / `pointseg eval` target, one module each.

`TASK_REGISTRY` maps a task name to its `Task` (`pointseg.tasks.base`): the point-cloud tasks
(`s3dis`, `modelnet40`) and the general-graph tasks (Planetoid, OGB, PPI). The engine reaches tasks
only through `get_task` / `task_for_checkpoint`; task modules are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from pointseg.errors import ConfigError
from pointseg.tasks.base import StepResult, Task
from pointseg.tasks.graphs import Batch, GraphData, GraphLevelTask, GraphTask, NodeTask

TASK_REGISTRY: dict[str, Task] = {}

# Task modules, imported on first use of the registry (each calls `register_task`); this order is
# the order of `pointseg train --help`.
TASK_MODULES = ("s3dis", "modelnet40", "planetoid", "ogbg", "ogbn", "ppi")
_loaded = False


def register_task(task: Task) -> Task:
    if not task.name:
        raise ValueError(f"{type(task).__name__}: a task needs a name")
    if task.name in TASK_REGISTRY:
        raise ValueError(f"task {task.name!r} is already registered")
    TASK_REGISTRY[task.name] = task
    return task


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for mod in TASK_MODULES:
            importlib.import_module(f"pointseg.tasks.{mod}")


def task_names() -> list[str]:
    _load()
    return list(TASK_REGISTRY)


def graph_task_names() -> list[str]:
    _load()
    return [n for n, t in TASK_REGISTRY.items() if isinstance(t, GraphTask)]


def is_graph_task(name: str | None) -> bool:
    _load()
    return isinstance(TASK_REGISTRY.get(name or ""), GraphTask)


def get_task(name: str) -> Task:
    _load()
    if name not in TASK_REGISTRY:
        raise ConfigError(f"unknown task {name!r}; valid: {', '.join(TASK_REGISTRY)}")
    return TASK_REGISTRY[name]


def task_for_checkpoint(ckpt: dict[str, Any]) -> Task:
    """The task a checkpoint belongs to: `meta["dataset"]` when it names a registered task, else
    (converted checkpoints of the original code) by the model: classification → modelnet40,
    segmentation → s3dis."""
    _load()
    meta = ckpt.get("meta") or {}
    model_config = ckpt.get("model_config") or {}
    if not isinstance(model_config, dict):
        model_config = model_config.to_dict()
    dataset = meta.get("dataset")
    if model_config.get("kind") == "graph":
        if dataset not in TASK_REGISTRY:
            raise ConfigError(
                f"graph checkpoint of task {dataset!r}, which is not registered; graph tasks: "
                f"{', '.join(graph_task_names())}"
            )
        return TASK_REGISTRY[dataset]
    task = model_config.get("task") or meta.get("task") or "segmentation"
    return TASK_REGISTRY["modelnet40" if task == "classification" else "s3dis"]


__all__ = [
    "Batch",
    "GraphData",
    "GraphLevelTask",
    "GraphTask",
    "NodeTask",
    "TASK_REGISTRY",
    "StepResult",
    "Task",
    "get_task",
    "graph_task_names",
    "is_graph_task",
    "register_task",
    "task_for_checkpoint",
    "task_names",
]
