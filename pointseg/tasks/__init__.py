"""Training tasks on general graphs, one file each (see `pointseg.tasks.base` for the interface).

`TASK_REGISTRY` maps the `pointseg train <task>` name to its `Task`. The point-cloud tasks
(s3dis, modelnet40) still live in `pointseg.engine.train`.
"""

from __future__ import annotations

import importlib

from pointseg.errors import ConfigError
from pointseg.tasks.base import Batch, GraphData, GraphLevelTask, NodeTask, Task

TASK_REGISTRY: dict[str, Task] = {}

# Task modules, imported on first use of the registry (each calls `register_task`).
TASK_MODULES = ("planetoid", "ogbg", "ogbn", "ppi")
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


def is_graph_task(name: str | None) -> bool:
    _load()
    return name in TASK_REGISTRY


def get_task(name: str) -> Task:
    _load()
    if name not in TASK_REGISTRY:
        raise ConfigError(f"unknown task {name!r}; graph tasks: {', '.join(TASK_REGISTRY)}")
    return TASK_REGISTRY[name]


__all__ = [
    "Batch",
    "GraphData",
    "GraphLevelTask",
    "NodeTask",
    "TASK_REGISTRY",
    "Task",
    "get_task",
    "is_graph_task",
    "register_task",
    "task_names",
]
