"""The `Task` interface: everything that differs between S3DIS, ModelNet40 and the graph tasks.

The training loop (`pointseg.engine.trainer.Trainer`) and `pointseg eval`
(`pointseg.engine.evaluate.evaluate_checkpoint`) know no dataset: they look the task up by name in
the registry (`pointseg.tasks.get_task`) and call it. A task owns

- its **settings**: `defaults` (TrainConfig values that differ from TrainConfig's own defaults)
  and `settings` (which of the task-specific `OPTIONAL_SETTINGS` it reads; setting any other one
  is a ConfigError naming it);
- its **data and model**: `build_data(cfg, info)` → a task-defined data object,
  `model_config(cfg, data)` → the model config checked against the data;
- its **batches and step**: `steps_per_epoch`, `train_batches(cfg, data, info, epoch, start)` (the
  epoch's order is a pure function of (seed, epoch): exact resume), `training_step(model, batch,
  …) → StepResult` (loss and counts);
- its **validation**: `validate(model, …)` → the `val_*` columns of log.csv, `best_metric` (the
  column that picks best.pt, higher is better), `log_columns`, `checkpoint_meta`;
- its **evaluation**: `evaluate(path, ckpt, **options)` for `pointseg eval`, accepting exactly
  the options named in `eval_options` (others are a ConfigError naming the flags).

A new task is one module: subclass `Task` (or `PointCloudTask` / `NodeTask` / `GraphLevelTask`),
register an instance with `pointseg.tasks.register_task`, and list the module in
`pointseg.tasks.TASK_MODULES` (docs/architecture.md has a worked example).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from pointseg.errors import ConfigError

# TrainConfig keys only some tasks read; every other key (optimiser, schedule, runtime, …) is
# read by the trainer for every task.
OPTIONAL_SETTINGS = frozenset(
    {
        "data",
        "init",
        "cache",
        "blocks",
        "test_area",
        "val_fraction",
        "val_min",
        "num_points",
        "max_train_samples",
        "max_val_samples",
        "label_smoothing",
        "class_weights",
        "augment",
        "num_workers",
        "sync_bn",
    }
)

# `pointseg eval` options every task accepts.
COMMON_EVAL_OPTIONS = frozenset({"out", "device", "seed", "progress"})


@dataclass
class StepResult:
    """One training step: the loss to back-propagate and the counts of the epoch's log row."""

    loss: Tensor  # scalar, differentiable
    correct: float  # for train_acc = Σ correct / Σ count
    count: float  # rows the loss averages over (points, shapes, nodes, labels)
    samples: float  # blocks / shapes / graphs (throughput in samples/s)
    points: float = 0.0  # points (throughput in points/s)


class Task:
    """Base class of every task; subclasses set the attributes and implement the methods."""

    name: str = ""
    description: str = ""
    data_help: str = ""  # what --data must contain (graph tasks)
    defaults: dict[str, Any] = {}
    settings: frozenset[str] = frozenset()  # which OPTIONAL_SETTINGS this task reads
    best_metric: str = "val_metric"  # log column choosing best.pt (higher is better)
    log_columns: tuple[str, ...] = ()
    throughput: str = "samples"  # "samples" | "points": what log.csv's throughput counts
    sample_noun: str = "samples"  # in the start-up line: "N train / M val <noun>"
    distributed: bool = True  # may run under torchrun (DDP)
    eval_options: frozenset[str] = COMMON_EVAL_OPTIONS
    setting_help: dict[str, str] = {}  # `pointseg train <task> --help` text of its data flags

    # ------------------------------------------------------------------------------ settings
    def run_name(self, cfg) -> str:
        """Default run folder name (`--run` overrides it)."""
        return f"{cfg.dataset}_{cfg.model}"

    def check_settings(self, given: dict[str, Any], source: str) -> None:
        """ConfigError naming the task-specific settings in `given` this task does not read."""
        unused = sorted(k for k in given if k in OPTIONAL_SETTINGS and k not in self.settings)
        if unused:
            used = sorted(self.settings)
            raise ConfigError(
                f"{source}: {', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used by "
                f"{self.name}; its data settings are: {', '.join(used) or 'none'}"
            )

    def check_config(self, cfg) -> None:
        """Task-specific value checks of a resolved config (ConfigError naming the key)."""

    @property
    def best_label(self) -> str:
        """How the best metric is named in messages ("val miou", "val accuracy")."""
        return self.best_metric.replace("val_", "val ")

    # ------------------------------------------------------------------------------ data, model
    def build_data(self, cfg, info) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def model_config(self, cfg, data) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def build_model(self, cfg, data, info, resume_from=None) -> tuple[Any, Any]:
        """(model config, model) of a run: `model_config` built by the model registry.
        `resume_from`: the run's last.pt when resuming (its weights are loaded afterwards)."""
        from pointseg.models import create_model

        config = self.model_config(cfg, data)
        return config, create_model(config)

    def num_samples(self, data, split: str) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------------------ training
    def steps_per_epoch(self, cfg, data, info) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def train_batches(self, cfg, data, info, epoch: int, start: int):  # pragma: no cover
        """(number of batches in the epoch, iterator over the batches from `start` on)."""
        raise NotImplementedError

    def training_step(self, model, batch, cfg, data, info) -> StepResult:  # pragma: no cover
        raise NotImplementedError

    def validate(self, model, cfg, data, info) -> dict[str, float]:  # pragma: no cover
        """The `val_*` columns of log.csv (NaN where not defined), with `model` in eval mode."""
        raise NotImplementedError

    def log_constants(self) -> dict[str, Any]:
        """Columns of log.csv with the same value in every row (e.g. the metric's name)."""
        return {}

    def checkpoint_meta(self, cfg, data) -> dict[str, Any]:  # pragma: no cover - abstract
        """The task's part of a checkpoint's `meta` (task, dataset, classes, data settings)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------ evaluation
    @property
    def checkpoint_label(self) -> str:
        """How error messages name this task's checkpoints ("segmentation (S3DIS)")."""
        return self.name

    def check_eval_options(self, path: Path, options: dict[str, Any]) -> None:
        """ConfigError naming the `pointseg eval` flags given that this task does not use."""
        wrong = sorted(k for k in options if k not in self.eval_options)
        if wrong:
            flags = ", ".join(_flag(k) for k in wrong)
            takes = ", ".join(_flag(k) for k in sorted(self.eval_options - {"progress"}))
            raise ConfigError(
                f"{path} is a {self.checkpoint_label} checkpoint; {flags} "
                f"{'does' if len(wrong) == 1 else 'do'} not apply to it (it takes {takes})"
            )

    def evaluate(self, path: Path, ckpt: dict, **options: Any) -> dict:  # pragma: no cover
        """`pointseg eval` of checkpoint `path` (already loaded as `ckpt`); returns metrics."""
        raise NotImplementedError


def _flag(option: str) -> str:
    """The `pointseg eval` flag of an option name."""
    return {"save_predictions": "--no-predictions", "progress": "--no-progress"}.get(
        option, "--" + option.replace("_", "-")
    )


__all__ = ["COMMON_EVAL_OPTIONS", "OPTIONAL_SETTINGS", "StepResult", "Task"]
