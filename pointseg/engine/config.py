"""Training configuration: `TrainConfig` and its sources (defaults < YAML < CLI flags < `--set`).

`resolve_config` layers the sources, later ones winning: the task's defaults
(`pointseg.tasks.<task>.defaults`; TrainConfig's own field defaults are the S3DIS paper recipe),
a base (a run's saved config.yaml when resuming), a YAML file, CLI flags, `--set key=value`.
Every source is checked: unknown keys, values of the wrong type, and settings the task does not
read (`Task.settings`) are a ConfigError naming the key and where it was set.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pointseg.errors import ConfigError


@dataclass
class TrainConfig:
    """Everything a training run needs; resolved from defaults < YAML < CLI flags < `--set`.

    Field defaults are the S3DIS paper recipe; each task's `defaults` (`pointseg.tasks`) replaces
    the ones that differ for it (ModelNet40, the graph tasks). `model_args` overrides fields of the
    model preset `model` (`--set model.channels=32`).
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
    weight_decay_scope: str = "all"  # all | first: decay only the input layer (GCN's recipe)
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
    def run_name(self) -> str:
        """`run`, else the task's default (`<dataset>_<model>`, S3DIS adds `_area<k>`)."""
        if self.run:
            return self.run
        from pointseg.tasks import get_task

        return get_task(self.dataset).run_name(self)

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
        if self.weight_decay_scope not in ("all", "first"):
            raise ConfigError(
                f"weight_decay_scope {self.weight_decay_scope!r} is not known; valid: all, first"
            )
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
        from pointseg.tasks import get_task

        get_task(self.dataset).check_config(self)


def known_datasets() -> tuple[str, ...]:
    """Every registered task (`pointseg.tasks`): s3dis, modelnet40 and the graph tasks."""
    from pointseg.tasks import task_names

    return tuple(task_names())


def dataset_defaults(ds: str) -> dict[str, Any]:
    """The TrainConfig values task `ds` sets differently from TrainConfig's own defaults."""
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
    from pointseg.tasks import get_task

    task = get_task(ds)
    for d, src in normalised:
        if src != "saved config.yaml":  # a saved run's config lists every key
            task.check_settings(d, src)
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


def load_run_config(run_dir: str | Path) -> dict:
    """The saved config.yaml of a run, as a dict (base layer when resuming)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{path} not found: is {run_dir} a pointseg run folder?")
    return load_config_file(path)


__all__ = [
    "TrainConfig",
    "dataset_defaults",
    "is_better",
    "known_datasets",
    "load_config_file",
    "load_run_config",
    "parse_set",
    "resolve_config",
]
