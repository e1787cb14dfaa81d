"""`train(cfg) -> run_dir`: one training run of any task, with exact resume and DDP.

The pieces live in their own modules: `pointseg.engine.config` (`TrainConfig`, `resolve_config`:
defaults < YAML < flags < `--set`), `pointseg.engine.trainer` (the one loop, `Trainer`),
`pointseg.tasks` (what each task — S3DIS, ModelNet40, the graph tasks — supplies to it) and
`pointseg.runtime` (RNG state, stop signals, determinism). This module keeps the names earlier
code imported from it.
"""

from __future__ import annotations

from pathlib import Path

from pointseg.engine import distributed as D
from pointseg.engine.config import (
    TrainConfig,
    is_better,
    known_datasets,
    load_config_file,
    load_run_config,
    parse_set,
    resolve_config,
)
from pointseg.engine.trainer import Trainer
from pointseg.metrics import ConfusionMatrix
from pointseg.runtime.rng import rng_state, seed_everything, set_rng_state
from pointseg.runtime.signals import TrainingInterrupted
from pointseg.tasks.pointcloud import POINT_LOG_COLUMNS as LOG_COLUMNS


def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train (or continue, with `resume=True`) the run described by `cfg`; return its folder.

    Under torchrun (WORLD_SIZE > 1) this joins the process group, shards the data and wraps the
    model in DDP; only rank 0 writes files. Raises `TrainingInterrupted` after saving `last.pt`
    when SIGINT/SIGTERM arrives.
    """
    info = D.init_distributed(cfg.device)
    try:
        return Trainer(cfg, info, resume=resume, overwrite=overwrite).run()
    finally:
        D.cleanup(info)


__all__ = [
    "ConfusionMatrix",
    "LOG_COLUMNS",
    "Trainer",
    "TrainConfig",
    "TrainingInterrupted",
    "is_better",
    "known_datasets",
    "load_config_file",
    "load_run_config",
    "parse_set",
    "resolve_config",
    "rng_state",
    "seed_everything",
    "set_rng_state",
    "train",
]
