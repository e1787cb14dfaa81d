"""Training: `TrainConfig` (YAML + CLI flags) and `train(cfg) -> run_dir`, with exact resume and DDP.

A run lives in `<out_dir>/<run>/`:

- `config.yaml`    the resolved `TrainConfig` (what `--resume` starts from)
- `last.pt`        everything needed to continue bit-for-bit: model, optimiser, scheduler, the RNG
                   states of every rank (torch CPU/CUDA, numpy, python `random`), epoch, the next batch
                   of that epoch, global step, best metric, per-epoch history and per-step losses
- `best.pt`        the model with the best *validation* metric (higher is better: val mIoU for S3DIS,
                   val OA for ModelNet40); validation data is carved from the training areas / the
                   training split, never from the test area
- `log.csv`        one row per epoch (`LOG_COLUMNS`), `steps.csv` one row per optimiser step
- `curves.png`     loss and metric curves (`pointseg.engine.plots`), `tb/` TensorBoard events

Exact resume: the data order of an epoch is a pure function of (seed, epoch)
(`DistributedSampler(seed=seed).set_epoch(epoch)`, also with one process), every random draw the
loop makes (stochastic dilation, dropout, point subsampling, augmentation) comes from the global
torch RNG whose state is checkpointed, and the DataLoader gets its own generator so creating it
draws nothing from the global RNG. A run interrupted anywhere (end of epoch, `--save-every`,
`max_steps`, Ctrl-C/SIGTERM after the current step) and resumed reproduces the uninterrupted run's
weights exactly (tested).

Paper defaults (DESIGN §3). S3DIS: Adam lr 1e-3, StepLR every 20 epochs × 0.5, 100 epochs, batch 16,
plain cross-entropy, no augmentation, test area 5. ModelNet40: SGD lr 0.1 momentum 0.9 (weight decay
1e-4 as in the original code), cosine to 1e-3 over 400 epochs, label-smoothed cross-entropy 0.2
(PyTorch's `label_smoothing`, which spreads ε/C over all classes), random scale [2/3, 3/2] and shift
[-0.2, 0.2] per shape, 1024 points.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import random
import re
import signal
import sys
import threading
import time
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm.auto import tqdm

from pointseg.engine import distributed as D
from pointseg.errors import ConfigError, DataError, PointsegError
from pointseg.io import atomic_write_text, remove_stale_temps
from pointseg.metrics import ConfusionMatrix

DATASETS = ("s3dis", "modelnet40")

# Columns of log.csv (one row per epoch). Validation metrics not defined for a task are left empty.
LOG_COLUMNS = (
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

# The metric that picks best.pt, per dataset. Higher is better for both (see `is_better`).
BEST_METRIC = {"s3dis": "val_miou", "modelnet40": "val_oa"}


@dataclass
class TrainConfig:
    """Everything a training run needs; resolved from defaults < YAML < CLI flags < `--set`.

    Field defaults are the S3DIS paper recipe; `DATASET_DEFAULTS["modelnet40"]` replaces the ones
    that differ for ModelNet40. `model_args` overrides fields of the model preset `model`
    (`--set model.channels=32`).
    """

    dataset: str = "s3dis"
    model: str = "resgcn28"
    model_args: dict = field(default_factory=dict)
    init: str | None = None  # checkpoint whose weights (and architecture) start the run
    run: str | None = None  # run folder name under out_dir; default from dataset/model/test area
    out_dir: str = "checkpoints"
    # data
    cache: str | None = None  # S3DIS room cache (pointseg prepare); recorded for whole-room eval
    blocks: str | None = (
        None  # S3DIS HDF5 blocks root (pointseg blocks) or indoor3d_sem_seg_hdf5_data
    )
    data: str | None = None  # ModelNet40: modelnet40_ply_hdf5_2048 folder or mesh folder
    test_area: int = 5
    val_fraction: float = 0.1  # S3DIS: fraction of training rooms; ModelNet: of training shapes
    val_min: int = 1  # at least this many validation rooms / shapes (when val_fraction > 0)
    num_points: int | None = (
        None  # points per sample (S3DIS: random subset of each block; None = all)
    )
    max_train_samples: int | None = None  # seeded cap on training blocks/shapes (smoke runs)
    max_val_samples: int | None = None
    # optimisation
    epochs: int = 100
    batch_size: int = 16  # global batch; each of W ranks gets batch_size / W
    optimizer: str = "adam"  # adam | sgd | adamw
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "step"  # step | cosine | warmup_cosine | none
    step_size: int = 20
    gamma: float = 0.5
    min_lr: float = 1e-3  # cosine, warmup_cosine: final learning rate
    warmup_steps: int = 0  # warmup_cosine: optimiser steps of linear warm-up from 0 to lr
    label_smoothing: float = 0.0
    class_weights: str = "none"  # none | inverse_sqrt (S3DIS: 1/sqrt of training label frequency)
    augment: bool = False  # ModelNet: scale/shift; S3DIS: random rotation about z
    grad_clip: float | None = None
    # runtime
    seed: int = 0
    deterministic: bool = False
    threads: int | None = None
    device: str = "auto"
    num_workers: int = 0
    sync_bn: bool = True  # DDP: BatchNorm statistics over the global batch of all ranks
    save_every: int = 0  # also save last.pt every N optimiser steps (0 = once per epoch)
    max_steps: int | None = None  # stop (resumably) after this many optimiser steps in total
    eval_every: int = 1  # validate every N epochs (and after the last one)
    tensorboard: bool = True
    progress: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        d = self.to_dict()
        # Nested form (model: {name: …, <overrides>}) reads better and round-trips through from_dict.
        d["model"] = {"name": d["model"], **d.pop("model_args")}
        return yaml.safe_dump(d, sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> TrainConfig:
        """Build from a plain dict (YAML); unknown keys → ConfigError naming them and the valid keys."""
        return cls(**_normalise(d, source))

    @property
    def task(self) -> str:
        return "segmentation" if self.dataset == "s3dis" else "classification"

    @property
    def run_name(self) -> str:
        if self.run:
            return self.run
        name = f"{self.dataset}_{self.model}"
        return f"{name}_area{self.test_area}" if self.dataset == "s3dis" else name

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.run_name

    def validate(self) -> None:
        """Value checks with messages naming the key and the allowed values."""
        if self.dataset not in known_datasets():
            raise ConfigError(
                f"dataset {self.dataset!r} is not known; valid: {', '.join(known_datasets())}"
            )
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ConfigError(f"optimizer {self.optimizer!r} is not known; valid: adam, adamw, sgd")
        if self.scheduler not in ("step", "cosine", "warmup_cosine", "none"):
            raise ConfigError(
                f"scheduler {self.scheduler!r} is not known; valid: step, cosine, warmup_cosine, none"
            )
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "eval_every": self.eval_every,
        }
        for key, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{key} must be > 0; got {value}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1); got {self.val_fraction}")
        if self.class_weights not in ("none", "inverse_sqrt"):
            raise ConfigError(
                f"class_weights {self.class_weights!r} is not known; valid: none, inverse_sqrt"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1); got {self.label_smoothing}")
        for key in ("num_points", "max_train_samples", "max_val_samples", "max_steps", "threads"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ConfigError(f"{key} must be a positive integer or null; got {value}")
        if self.save_every < 0 or self.num_workers < 0 or self.val_min < 0 or self.warmup_steps < 0:
            raise ConfigError("save_every, num_workers, val_min and warmup_steps must be >= 0")
        if self.run is not None and (not self.run or "/" in self.run or self.run in (".", "..")):
            raise ConfigError(f"run name {self.run!r} must be a plain folder name")


# Replaced for ModelNet40 (DESIGN §3); anything not listed keeps the S3DIS default above.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "s3dis": {},
    "modelnet40": {
        "model": "resgcn28_modelnet",
        "epochs": 400,
        "batch_size": 32,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "scheduler": "cosine",
        "min_lr": 1e-3,
        "label_smoothing": 0.2,
        "augment": True,
        "num_points": 1024,
    },
}


def known_datasets() -> tuple[str, ...]:
    """The point-cloud datasets and the graph tasks of `pointseg.tasks`."""
    from pointseg.tasks import task_names

    return (*DATASETS, *task_names())


def dataset_defaults(ds: str) -> dict[str, Any]:
    if ds in DATASET_DEFAULTS:
        return DATASET_DEFAULTS[ds]
    from pointseg.tasks import get_task

    return dict(get_task(ds).defaults)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def _coerce(key: str, value: Any, source: str) -> Any:
    """Convert a YAML/`--set` value to the field's type (YAML reads `1e-3` as a string)."""
    hint = _HINTS[key]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None or (isinstance(value, str) and value.lower() in ("null", "none") and optional):
        if optional:
            return None
        raise ConfigError(f"{source}: {key} cannot be null")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "yes", "1", "on"):
                return True
            if str(value).lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError(value)
        if base is int:
            if isinstance(value, bool):
                raise ValueError(value)
            f = float(value)
            if not f.is_integer():
                raise ValueError(value)
            return int(f)
        if base is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if base is str:
            return str(value)
        if base is dict:
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{source}: {key} expects {getattr(base, '__name__', base)}; got {value!r}"
        ) from None
    return value


def _normalise(d: dict, source: str) -> dict:
    """Check keys, unfold `model: {name: …, overrides}` and coerce types."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a mapping of config keys, got {type(d).__name__}")
    out: dict[str, Any] = {}
    for key, value in d.items():
        if key == "model" and isinstance(value, dict):
            value = dict(value)
            if "name" in value:
                out["model"] = _coerce("model", value.pop("name"), source)
            out.setdefault("model_args", {}).update(value)
            continue
        if key not in _FIELDS:
            raise ConfigError(
                f"unknown config key {key!r} in {source}; valid keys: {', '.join(sorted(_FIELDS))}"
                " (model fields go under `model:` or --set model.<field>=…)"
            )
        if key == "model_args":
            out.setdefault("model_args", {}).update(_coerce(key, value, source))
        else:
            out[key] = _coerce(key, value, source)
    return out


def parse_set(items: list[str] | None) -> dict:
    """`["lr=0.01", "model.channels=32"]` → `{"lr": 0.01, "model_args": {"channels": 32}}` (YAML values)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set model.channels=32")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from None
        if key in ("model", "model.name"):
            out["model"] = value
        elif key.startswith("model."):
            out.setdefault("model_args", {})[key[len("model.") :]] = value
        else:
            out[key] = value
    return out


def load_config_file(path: str | Path) -> dict:
    """Read a YAML config file into a plain dict (keys checked later by `resolve_config`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (see configs/*.yaml for examples)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of keys at the top level")
    return data


def resolve_config(
    dataset: str | None = None,
    *,
    config_file: str | Path | None = None,
    flags: dict | None = None,
    sets: list[str] | None = None,
    base: dict | None = None,
) -> TrainConfig:
    """Layer the sources, later ones winning: paper defaults for the dataset < `base` (a saved
    config.yaml when resuming) < YAML file < CLI `flags` (only those the user gave) < `--set`."""
    layers: list[tuple[dict, str]] = []
    if base:
        layers.append((base, "saved config.yaml"))
    if config_file is not None:
        layers.append((load_config_file(config_file), str(config_file)))
    if flags:
        layers.append(({k: v for k, v in flags.items() if v is not None}, "command line"))
    if sets:
        layers.append((parse_set(sets), "--set"))
    normalised = [(_normalise(d, src), src) for d, src in layers]
    ds = dataset
    for d, _ in normalised:
        ds = d.get("dataset", ds)
    ds = ds or "s3dis"
    if ds not in known_datasets():
        raise ConfigError(f"dataset {ds!r} is not known; valid: {', '.join(known_datasets())}")
    merged: dict[str, Any] = {"dataset": ds, **dataset_defaults(ds), "model_args": {}}
    for d, _ in normalised:
        for key, value in d.items():
            if key == "model_args":
                merged["model_args"].update(value)
            else:
                merged[key] = value
    if dataset is not None and merged["dataset"] != dataset:
        raise ConfigError(
            f"config says dataset {merged['dataset']!r} but the command is `pointseg train {dataset}`"
        )
    cfg = TrainConfig(**merged)
    cfg.validate()
    return cfg


def is_better(value: float, best: float | None) -> bool:
    """Higher validation mIoU / accuracy is better; NaN is never better; anything beats no best."""
    if value is None or not math.isfinite(value):
        return False
    return best is None or not math.isfinite(best) or value > best


# ----------------------------------------------------------------------------------------- RNG


def rng_state() -> dict:
    """RNG states in a `torch.load(weights_only=True)`-loadable form (tensors, ints, floats, lists)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_state[0]),
            "state": torch.tensor(py_state[1], dtype=torch.int64),
            "gauss_next": py_state[2],
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of `rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["key"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------- signals


class TrainingInterrupted(PointsegError):
    """Raised after a resumable `last.pt` was written because of SIGINT/SIGTERM."""

    def __init__(self, signum: int, run_dir: Path, epoch: int, step: int):
        self.signum = signum
        self.run_dir = run_dir
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(
            f"training stopped by {name} at epoch {epoch + 1}, step {step}; saved {run_dir / 'last.pt'} "
            f"— resume with --resume (same --run/--out)"
        )


class _StopSignals:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step (the step finishes first).

    A second Ctrl-C while the checkpoint is not yet written raises KeyboardInterrupt immediately.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\n{signal.Signals(signum).name} received: finishing this step, then saving last.pt",
            file=sys.stderr,
        )

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ------------------------------------------------------------------------------------------- data


_AREA_RE = re.compile(r"Area_(\d+)")


def area_of(room: str) -> int | None:
    """`Area_5_office_1` → 5 (None when the name carries no area)."""
    m = _AREA_RE.search(str(room))
    return int(m.group(1)) if m else None


def _seeded_pick(items: list, count: int, seed: int, salt: int) -> list:
    """`count` distinct items chosen by a generator seeded from (seed, salt), in their original order."""
    rng = np.random.default_rng([seed, salt])
    chosen = rng.choice(len(items), size=count, replace=False)
    return [items[i] for i in sorted(chosen.tolist())]


@dataclass
class DataBundle:
    train: Dataset
    val: Dataset | None
    in_channels: int
    num_classes: int
    classes: list[str]
    info: dict  # recorded in checkpoint meta["data"]


def _s3dis_data(cfg: TrainConfig) -> DataBundle:
    from pointseg.data.blocks import S3DISBlocks
    from pointseg.data.s3dis import CLASSES

    if cfg.blocks is None:
        raise ConfigError(
            "pointseg train s3dis needs --blocks <folder>: HDF5 blocks made by `pointseg blocks s3dis "
            "--cache data/s3dis --out data/s3dis_blocks` (or the published indoor3d_sem_seg_hdf5_data folder)"
        )
    root = Path(cfg.blocks)
    if not root.is_dir():
        raise DataError(
            f"blocks folder {root} does not exist; create it with `pointseg prepare s3dis --raw <raw> --out data/s3dis` "
            f"then `pointseg blocks s3dis --cache data/s3dis --out {root}`"
        )
    if cfg.cache is not None and not Path(cfg.cache).is_dir():
        raise DataError(
            f"room cache {cfg.cache} does not exist; run `pointseg prepare s3dis --raw <raw> --out {cfg.cache}`"
        )
    full = S3DISBlocks(root, split="train")
    rooms = [str(r) for r in full.rooms]
    areas = sorted({a for a in map(area_of, rooms) if a is not None})
    known = set(areas)
    test_list = root / "test" / "room_filelist.txt"
    if test_list.is_file():
        known |= {a for a in map(area_of, test_list.read_text().split()) if a is not None}
    if cfg.cache is not None:
        from pointseg.data.s3dis import list_rooms

        with contextlib.suppress(PointsegError, FileNotFoundError, KeyError, ValueError):
            known |= {
                a
                for a in (area_of(r["area"]) for r in list_rooms(cfg.cache, None))
                if a is not None
            }
    if cfg.test_area not in known:
        raise DataError(
            f"test area {cfg.test_area} has no rooms in {root}"
            + (f" or {cfg.cache}" if cfg.cache else "")
            + f" (areas found: {', '.join(map(str, sorted(known))) or 'none'}); pick one with --test-area"
        )
    train_idx = [i for i, r in enumerate(rooms) if area_of(r) != cfg.test_area]
    if not train_idx:
        raise DataError(
            f"no training blocks outside test area {cfg.test_area} in {root} (areas found: "
            f"{', '.join(map(str, areas))}); make blocks for the training areas with `pointseg blocks s3dis`"
        )
    train_rooms = sorted({rooms[i] for i in train_idx})
    val_rooms: list[str] = []
    val_idx: list[int] = []
    if cfg.val_fraction > 0:
        n_val = max(cfg.val_min, round(cfg.val_fraction * len(train_rooms)))
        if len(train_rooms) >= 2:
            # Whole rooms go to validation, so val blocks never overlap training blocks.
            val_rooms = _seeded_pick(train_rooms, min(n_val, len(train_rooms) - 1), cfg.seed, 1)
            held = set(val_rooms)
            val_idx = [i for i in train_idx if rooms[i] in held]
            train_idx = [i for i in train_idx if rooms[i] not in held]
        else:
            # One training room: fall back to a block-level split (blocks overlap at stride 0.5).
            print(
                f"warning: only one training room ({train_rooms[0]}); validating on a seeded {cfg.val_fraction:.0%} of its blocks",
                file=sys.stderr,
            )
            n_val = min(
                max(cfg.val_min, round(cfg.val_fraction * len(train_idx))), len(train_idx) - 1
            )
            val_idx = _seeded_pick(train_idx, n_val, cfg.seed, 1) if n_val > 0 else []
            held = set(val_idx)
            train_idx = [i for i in train_idx if i not in held]
    if cfg.max_train_samples is not None and len(train_idx) > cfg.max_train_samples:
        train_idx = _seeded_pick(train_idx, cfg.max_train_samples, cfg.seed, 2)
    if cfg.max_val_samples is not None and len(val_idx) > cfg.max_val_samples:
        val_idx = _seeded_pick(val_idx, cfg.max_val_samples, cfg.seed, 3)
    points, _ = full[0]
    info = {
        "dataset": "s3dis",
        "cache": str(Path(cfg.cache).resolve()) if cfg.cache else None,
        "blocks": str(root.resolve()),
        "test_area": cfg.test_area,
        "train_areas": [a for a in areas if a != cfg.test_area],
        "val_rooms": val_rooms,
        "train_blocks": len(train_idx),
        "val_blocks": len(val_idx),
        # points per sample the model was trained on (whole-room evaluation uses the same)
        "num_point": int(min(cfg.num_points or points.shape[0], points.shape[0])),
    }
    return DataBundle(
        Subset(full, train_idx),
        Subset(full, val_idx) if val_idx else None,
        int(points.shape[-1]),
        len(CLASSES),
        list(CLASSES),
        info,
    )


def _modelnet_data(cfg: TrainConfig) -> DataBundle:
    from pointseg.data import modelnet as M

    if cfg.data is None:
        raise ConfigError(
            "pointseg train modelnet40 needs --data <folder>: the published modelnet40_ply_hdf5_2048 folder "
            "or a ModelNet mesh folder <class>/{train,test}/*.off (e.g. from `pointseg synth modelnet`)"
        )
    root = Path(cfg.data)
    if not root.is_dir():
        raise DataError(
            f"ModelNet folder {root} does not exist; pass --data <modelnet40_ply_hdf5_2048 or mesh folder>"
        )
    n_points = cfg.num_points or 1024
    if any(root.glob("*.h5")):
        full = M.ModelNetH5(root, "train", num_points=n_points)
        kind = "h5"
    else:
        full = M.ModelNetMeshes(root, "train", num_points=n_points, progress=cfg.progress)
        kind = "meshes"
    n = len(full)
    if n == 0:
        raise DataError(f"no training shapes found in {root}")
    idx = list(range(n))
    val_idx: list[int] = []
    if cfg.val_fraction > 0 and n >= 2:
        n_val = min(max(cfg.val_min, round(cfg.val_fraction * n)), n - 1)
        val_idx = _seeded_pick(idx, n_val, cfg.seed, 1)
        held = set(val_idx)
        idx = [i for i in idx if i not in held]
    if cfg.max_train_samples is not None and len(idx) > cfg.max_train_samples:
        idx = _seeded_pick(idx, cfg.max_train_samples, cfg.seed, 2)
    if cfg.max_val_samples is not None and len(val_idx) > cfg.max_val_samples:
        val_idx = _seeded_pick(val_idx, cfg.max_val_samples, cfg.seed, 3)
    points, _ = full[0]
    classes = list(getattr(full, "classes", None) or M.MODELNET40_CLASSES)
    info = {
        "num_point": n_points,
        "dataset": "modelnet40",
        "data": str(root.resolve()),
        "format": kind,
        "train_shapes": len(idx),
        "val_shapes": len(val_idx),
    }
    return DataBundle(
        Subset(full, idx),
        Subset(full, val_idx) if val_idx else None,
        int(torch.as_tensor(points).shape[-1]),
        len(classes),
        classes,
        info,
    )


def build_data(cfg: TrainConfig) -> DataBundle:
    return _s3dis_data(cfg) if cfg.dataset == "s3dis" else _modelnet_data(cfg)


def build_model_config(cfg: TrainConfig, data: DataBundle):
    """The preset `cfg.model` with `cfg.model_args` applied, checked against the data."""
    from pointseg.models import get_config

    try:
        mcfg = get_config(cfg.model, **cfg.model_args)
    except TypeError as exc:
        raise ConfigError(f"bad model override in {cfg.model_args}: {exc}") from None
    if mcfg.task != cfg.task:
        hint = "resgcn28" if cfg.dataset == "s3dis" else "resgcn28_modelnet"
        raise ConfigError(
            f"model {cfg.model!r} is a {mcfg.task} model; {cfg.dataset} needs a {cfg.task} model (e.g. --model {hint})"
        )
    if mcfg.in_channels != data.in_channels:
        raise ConfigError(
            f"model {cfg.model!r} expects {mcfg.in_channels} input channels but the {cfg.dataset} data has "
            f"{data.in_channels}; set --set model.in_channels={data.in_channels}"
        )
    if (
        mcfg.num_classes != data.num_classes
        and "num_classes" not in cfg.model_args
        and cfg.dataset == "modelnet40"
    ):
        # A mesh folder with a subset of the ModelNet40 classes (labels index its own sorted class
        # folders): size the classifier to the data unless the user fixed num_classes.
        print(
            f"note: {data.num_classes} classes in the data ({', '.join(data.classes)}); model.num_classes set to {data.num_classes}",
            file=sys.stderr,
        )
        mcfg = mcfg.replace(num_classes=data.num_classes)
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


# ------------------------------------------------------------------------------------------ loop


def _batches(order: list[int], batch: int, drop_last: bool) -> list[list[int]]:
    out = [order[i : i + batch] for i in range(0, len(order), batch)]
    if drop_last and out and len(out[-1]) < batch:
        out.pop()
    return out


class Trainer:
    """One training run (use `train(cfg)`). Attributes are public for tests and the demo."""

    log_columns = LOG_COLUMNS

    def __init__(
        self, cfg: TrainConfig, info: D.DistInfo, *, resume: bool = False, overwrite: bool = False
    ):
        cfg.validate()
        self.cfg = cfg
        self.info = info
        self.run_dir = cfg.run_dir
        self.resume = resume
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
        if cfg.deterministic:
            # Same thread count ⇒ same reduction order on CPU; CUDA needs the workspace setting too.
            import os

            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.set_num_threads(cfg.threads or 1)
        elif cfg.threads:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed + info.rank)
        self.data = build_data(cfg)
        if cfg.init:  # architecture and weights from a checkpoint (pointseg.pretrained)
            from pointseg.pretrained import init_model

            say = print if info.rank == 0 else (lambda s: None)
            self.model_config, self.model_raw = init_model(
                cfg, self.data, resume_from=last if resume else None, say=say
            )
        else:
            self.model_config = build_model_config(cfg, self.data)
            from pointseg.models import create_model

            self.model_raw = create_model(self.model_config)
        self.model = D.wrap_model(self.model_raw, info, sync_bn=cfg.sync_bn)
        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        self.criterion = nn.CrossEntropyLoss(
            weight=self._class_weights(), label_smoothing=cfg.label_smoothing
        )
        self.epoch = 0
        self.batch = 0  # next batch of `epoch` (mid-epoch checkpoints)
        self.step = 0
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.history: list[dict] = []
        self.steps: list[list[float]] = []  # (step, fractional epoch, lr, loss)
        self.acc = self._zero_acc()
        self.writer = None

    # -------------------------------------------------------------------------------- builders
    def _make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        params = self.model.parameters()
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _make_scheduler(self):
        cfg = self.cfg
        if cfg.scheduler == "step":
            return torch.optim.lr_scheduler.StepLR(
                self.optimizer, step_size=cfg.step_size, gamma=cfg.gamma
            )
        if cfg.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=cfg.epochs, eta_min=cfg.min_lr
            )
        if cfg.scheduler == "warmup_cosine":
            # Stepped after every optimiser step (not per epoch): short runs of a few epochs still
            # get a smooth decay. Linear warm-up 0 → lr, then cosine lr → min_lr at the last step.
            total = max(cfg.epochs * self.steps_per_epoch(), 1)
            warm = min(cfg.warmup_steps, total - 1)
            floor = cfg.min_lr / cfg.lr

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / (warm + 1)
                t = min((step - warm) / max(total - warm, 1), 1.0)
                return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))

            return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        return None

    def _class_weights(self) -> torch.Tensor | None:
        """Loss weights w_c ∝ 1/sqrt(f_c) of the training labels, scaled so Σ_c f_c·w_c = 1.

        Ceiling, floor and wall hold most points of a room; without weights a short run learns
        them first and the small classes (column, board, …) late, which mIoU punishes.
        """
        if self.cfg.class_weights == "none":
            return None
        train = self.data.train
        labels = getattr(getattr(train, "dataset", None), "labels", None)
        if self.cfg.task != "segmentation" or labels is None:
            raise ConfigError("class_weights: only for S3DIS blocks (labels per point)")
        sel = labels[np.asarray(train.indices)]
        freq = np.bincount(sel.reshape(-1), minlength=self.data.num_classes).astype(np.float64)
        freq /= max(freq.sum(), 1.0)
        w = np.where(freq > 0, 1.0 / np.sqrt(np.maximum(freq, 1e-12)), 0.0)
        w /= max(float((freq * w).sum()), 1e-12)
        return torch.tensor(w, dtype=torch.float32, device=self.info.device)

    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch (as `run` batches them: padded sampler, drop_last)."""
        n = math.ceil(len(self.data.train) / self.info.world_size)
        drop_last = len(self.data.train) >= self.cfg.batch_size
        return n // self.rank_batch if drop_last else math.ceil(n / self.rank_batch)

    @staticmethod
    def _zero_acc() -> dict:
        return {
            "loss_sum": 0.0,
            "correct": 0.0,
            "count": 0.0,
            "batches": 0,
            "samples": 0.0,
            "points": 0.0,
            "time": 0.0,
        }

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------------------ checkpoint
    def _meta(self) -> dict:
        return {
            "task": self.cfg.task,
            "dataset": self.cfg.dataset,
            "classes": self.data.classes,
            "data": self.data.info,
            "epoch": self.epoch,
            "step": self.step,
            "best_metric": BEST_METRIC[self.cfg.dataset],
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
        self.acc = dict(ckpt.get("epoch_acc") or self._zero_acc())
        rngs = ckpt["rng"]
        if len(rngs) != self.info.world_size:
            print(
                f"warning: checkpoint was written by {len(rngs)} processes, resuming with {self.info.world_size}: RNG streams differ from an uninterrupted run",
                file=sys.stderr,
            )
        self._rng_to_restore = rngs[self.info.rank % len(rngs)]

    def write_logs(self, plot: bool | None = None) -> None:
        """log.csv, steps.csv and curves.png, rendered from the in-memory history (rank 0).

        Plotting costs ~1 s, so with `plot=None` curves.png is redrawn at most once a minute; the
        last epoch and interruptions pass `plot=True`.
        """
        if not self.info.is_main:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.log_columns, extrasaction="ignore")
        w.writeheader()
        for row in self.history:
            w.writerow(
                {
                    k: ("" if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in row.items()
                }
            )
        atomic_write_text(self.run_dir / "log.csv", buf.getvalue())
        buf = io.StringIO()
        buf.write("step,epoch,lr,loss\n")
        for s in self.steps:
            buf.write(f"{int(s[0])},{s[1]:.6f},{s[2]:.8g},{s[3]:.8g}\n")
        atomic_write_text(self.run_dir / "steps.csv", buf.getvalue())
        now = time.monotonic()
        if plot is None:
            plot = now - getattr(self, "_last_plot", -math.inf) >= 60.0
        if plot and self.history:
            from pointseg.engine.plots import plot_history

            self._last_plot = now
            plot_history(
                self.history,
                self.run_dir / "curves.png",
                title=f"{self.cfg.run_name}",
                steps=self.steps,
            )

    def _open_tensorboard(self) -> None:
        if not (self.cfg.tensorboard and self.info.is_main):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception as exc:  # tensorboard not installed: logs and plots still work
            print(
                f"warning: TensorBoard logging disabled ({exc}); log.csv and curves.png are still written",
                file=sys.stderr,
            )
            return
        # purge_step drops events a crashed run wrote after the checkpoint we resume from.
        self.writer = SummaryWriter(
            str(self.run_dir / "tb"), purge_step=self.step if self.resume else None
        )

    # ------------------------------------------------------------------------------------ steps
    def _prepare_batch(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
    ):
        """Point subsampling and augmentation, drawn from the global torch RNG (checkpointed)."""
        cfg = self.cfg
        x = x.float()
        y = y.long()
        if cfg.task == "segmentation":
            n = x.shape[1]
            if cfg.num_points is not None and cfg.num_points < n:
                keep = torch.randperm(n, generator=generator)[: cfg.num_points]
                x, y = x[:, keep], y[:, keep]  # (B, num_points, C), (B, num_points)
            if cfg.augment and generator is None:
                # Rotation about z of the block-centred xy channels (0:2) only; the room-normalised
                # channels 6:9 keep their meaning as absolute positions.
                theta = torch.rand(x.shape[0]) * (2 * math.pi)
                c, s = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
                x0, x1 = x[..., 0].clone(), x[..., 1].clone()
                x[..., 0], x[..., 1] = c * x0 - s * x1, s * x0 + c * x1
        else:
            y = y.reshape(-1)
            if cfg.augment and generator is None:
                # DGCNN/DeepGCN recipe: per-shape anisotropic scale in [2/3, 3/2], shift in [-0.2, 0.2].
                scale = torch.empty(x.shape[0], 1, 3).uniform_(2.0 / 3.0, 1.5)
                shift = torch.empty(x.shape[0], 1, 3).uniform_(-0.2, 0.2)
                x = torch.cat([x[..., :3] * scale + shift, x[..., 3:]], dim=-1)
        return x.to(self.info.device), y.to(self.info.device)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def validate(self) -> dict:
        """Validation loss and metrics over the held-out rooms/shapes, sharded over ranks, summed."""
        cfg, C = self.cfg, self.data.num_classes
        out = {
            "val_loss": float("nan"),
            "val_oa": float("nan"),
            "val_macc": float("nan"),
            "val_miou": float("nan"),
        }
        if self.data.val is None:
            return out
        self.model.eval()
        idx = list(range(self.info.rank, len(self.data.val), self.info.world_size))
        # Same point subsample every epoch, and the global RNG stays untouched (exact resume).
        gen = torch.Generator().manual_seed(cfg.seed)
        loader = DataLoader(
            self.data.val,
            batch_sampler=_batches(idx, self.rank_batch, False),
            num_workers=cfg.num_workers,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        cm = ConfusionMatrix(C)
        sums = torch.zeros(2, dtype=torch.float64)  # loss · count, count
        # The plain module: no gradient sync is needed in evaluation.
        net = D.unwrap_model(self.model)
        with torch.no_grad():
            for x, y in loader:
                x, y = self._prepare_batch(x, y, generator=gen)
                logits = net(x)
                n = y.numel()
                sums += torch.tensor([self._loss(logits, y).item() * n, n], dtype=torch.float64)
                cm.update(logits.argmax(-1), y)
        counts = torch.from_numpy(cm.matrix).to(self.info.device)
        cm = ConfusionMatrix.from_matrix(D.all_reduce_sum(counts, self.info).cpu().numpy())
        sums = D.all_reduce_sum(sums.to(self.info.device), self.info).cpu()
        out.update(val_loss=float(sums[0] / max(sums[1], 1)), val_oa=cm.oa(), val_macc=cm.macc())
        if cfg.task == "segmentation":
            out["val_miou"] = cm.miou()
        self.model.train()
        return out

    def run(self) -> Path:
        cfg, info = self.cfg, self.info
        if self.resume:
            self.load(self.run_dir / "last.pt")
        if info.is_main:
            self._remove_stale_temps()
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.yaml", cfg.to_yaml())
            self._open_tensorboard()
            n_par = sum(p.numel() for p in self.model_raw.parameters())
            n_val = len(self.data.val) if self.data.val is not None else 0
            print(
                f"run {self.run_dir}: {cfg.model} ({n_par:,} parameters) on {cfg.dataset}, "
                f"{len(self.data.train)} train / {n_val} val samples, batch {cfg.batch_size}"
                f" ({info.world_size} process{'es' if info.world_size > 1 else ''}, {info.device})"
                + (f", resuming at epoch {self.epoch + 1} step {self.step}" if self.resume else ""),
                file=sys.stderr,
            )
        sampler = DistributedSampler(
            self.data.train,
            num_replicas=info.world_size,
            rank=info.rank,
            shuffle=True,
            seed=cfg.seed,
        )
        # drop_last keeps every step a full global batch (BatchNorm, and DDP == single process).
        drop_last = len(self.data.train) >= cfg.batch_size
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
            with _StopSignals() as stop:
                while self.epoch < cfg.epochs:
                    sampler.set_epoch(self.epoch)
                    batches = _batches(list(sampler), self.rank_batch, drop_last)
                    status = self._train_epoch(batches, stop)
                    if status is not None:
                        return status
                    self._end_epoch()
        finally:
            if self.writer is not None:
                self.writer.close()
        if info.is_main:
            name = BEST_METRIC[cfg.dataset].replace("val_", "val ")
            best = (
                "n/a (no validation split)"
                if self.best is None
                else f"{self.best:.4f} (epoch {self.best_epoch})"
            )
            print(f"done: best {name} {best}; checkpoints in {self.run_dir}", file=sys.stderr)
        return self.run_dir

    def _train_epoch(self, batches: list[list[int]], stop: _StopSignals) -> Path | None:
        cfg, info = self.cfg, self.info
        start = self.batch
        loader = DataLoader(
            self.data.train,
            batch_sampler=batches[start:],
            num_workers=cfg.num_workers,
            # Own generator: creating the iterator must not draw from the global RNG (exact resume).
            generator=torch.Generator().manual_seed(cfg.seed * 100003 + self.epoch),
        )
        unit = "pts/s" if cfg.task == "segmentation" else "samples/s"
        bar = tqdm(
            total=len(batches),
            initial=start,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            unit="batch",
            disable=not (cfg.progress and info.is_main),
            leave=False,
            dynamic_ncols=True,
        )
        t_last = time.perf_counter()
        for b, (x, y) in enumerate(loader, start=start):
            x, y = self._prepare_batch(x, y)
            logits = self.model(x)
            loss = self._loss(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            if self.cfg.scheduler == "warmup_cosine":
                self.scheduler.step()
            self.step += 1
            self.batch = b + 1
            with torch.no_grad():
                correct = (logits.argmax(-1) == y).sum().item()
            n = y.numel()
            # One all-reduce per step: summed loss·n, correct, count and the stop flag of every rank.
            red = torch.tensor(
                [
                    loss.item() * n,
                    correct,
                    n,
                    x.shape[0],
                    x.shape[0] * x.shape[1],
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
            step_loss = red[0].item() / red[2].item()
            self.steps.append(
                [
                    float(self.step),
                    self.epoch + self.batch / max(len(batches), 1),
                    self.lr,
                    step_loss,
                ]
            )
            rate = (a["points"] if cfg.task == "segmentation" else a["samples"]) / max(
                a["time"], 1e-9
            )
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.4f}", **{unit.replace("/", "_per_"): f"{rate:,.0f}"})
            if self.writer is not None:
                self.writer.add_scalar("train/loss_step", step_loss, self.step)
            if red[5].item() > 0:
                bar.close()
                self.save(self.run_dir / "last.pt")
                self.write_logs(plot=True)
                signum = stop.signum or signal.SIGTERM
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

    def _end_epoch(self) -> None:
        cfg, info = self.cfg, self.info
        a = self.acc
        lr = self.lr
        row: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "step": self.step,
            "lr": lr,
            "train_loss": a["loss_sum"] / max(a["count"], 1),
            "train_acc": a["correct"] / max(a["count"], 1),
            "time_s": a["time"],
            "throughput": (a["points"] if cfg.task == "segmentation" else a["samples"])
            / max(a["time"], 1e-9),
            "throughput_unit": "points/s" if cfg.task == "segmentation" else "samples/s",
        }
        last_epoch = self.epoch + 1 == cfg.epochs
        if (self.epoch + 1) % cfg.eval_every == 0 or last_epoch:
            row.update(self.validate())
        else:
            row.update(
                val_loss=float("nan"),
                val_oa=float("nan"),
                val_macc=float("nan"),
                val_miou=float("nan"),
            )
        if self.scheduler is not None and cfg.scheduler != "warmup_cosine":
            with warnings.catch_warnings():
                # After a resume at the end of an epoch this process has taken no optimiser step,
                # but the run has (before the checkpoint): torch's order check does not apply.
                if self.step > 0:
                    warnings.filterwarnings(
                        "ignore", re.escape("Detected call of `lr_scheduler.step()`")
                    )
                self.scheduler.step()
        self.history.append(row)
        key = BEST_METRIC[cfg.dataset]
        improved = is_better(row[key], self.best)
        if improved:
            self.best, self.best_epoch = row[key], self.epoch + 1
        self.epoch += 1
        self.batch = 0
        self.acc = self._zero_acc()
        self.save(self.run_dir / "last.pt")
        if improved or (self.data.val is None and info.is_main):
            # Without a validation split best.pt is simply the latest model.
            self.save(self.run_dir / "best.pt", full=False)
        if info.is_main:
            self.write_logs(plot=True if last_epoch else None)
            if self.writer is not None:
                for k in (
                    "train_loss",
                    "train_acc",
                    "val_loss",
                    "val_oa",
                    "val_macc",
                    "val_miou",
                    "lr",
                    "throughput",
                ):
                    v = row.get(k)
                    if isinstance(v, float) and math.isfinite(v):
                        self.writer.add_scalar(k.replace("_", "/", 1), v, self.epoch)
                self.writer.flush()
            val = (
                ""
                if not math.isfinite(row[key])
                else f", {key} {row[key]:.4f}" + (" (best)" if improved else "")
            )
            print(
                f"epoch {self.epoch}/{cfg.epochs}: loss {row['train_loss']:.4f}, acc {row['train_acc']:.4f}{val}, "
                f"lr {lr:.2e}, {row['time_s']:.1f}s, {row['throughput']:,.0f} {row['throughput_unit']}",
                file=sys.stderr,
            )


def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train (or continue, with `resume=True`) the run described by `cfg`; return its folder.

    Under torchrun (WORLD_SIZE > 1) this joins the process group, shards the data and wraps the
    model in DDP; only rank 0 writes files. Raises `TrainingInterrupted` after saving `last.pt`
    when SIGINT/SIGTERM arrives.
    """
    info = D.init_distributed(cfg.device)
    try:
        if cfg.dataset not in DATASETS:  # a graph task (pointseg.tasks)
            from pointseg.engine.graph import GraphTrainer

            if cfg.init:
                raise ConfigError(f"--init applies to {', '.join(DATASETS)}, not {cfg.dataset}")

            return GraphTrainer(cfg, info, resume=resume, overwrite=overwrite).run()
        return Trainer(cfg, info, resume=resume, overwrite=overwrite).run()
    finally:
        D.cleanup(info)


def load_run_config(run_dir: str | Path) -> dict:
    """The saved config.yaml of a run, as a dict (base layer when resuming)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{path} not found: is {run_dir} a pointseg run folder?")
    return load_config_file(path)


__all__ = [
    "BEST_METRIC",
    "DATASET_DEFAULTS",
    "LOG_COLUMNS",
    "Trainer",
    "TrainConfig",
    "TrainingInterrupted",
    "area_of",
    "is_better",
    "load_run_config",
    "parse_set",
    "resolve_config",
    "rng_state",
    "set_rng_state",
    "train",
]
