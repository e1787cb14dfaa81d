"""Build a `Scene` from what a user has on disk.

Accepted inputs (any number, mixed):

- a demo report folder (`pointseg demo`): ``<out>/predictions/<model>/Area_<k>_<room>.npz`` →
  one model per sub-folder, in the demo's order;
- an evaluation output (`pointseg eval`): ``<run>/eval_area<k>/predictions/Area_<k>_<room>.npz``
  → one model named after the run (the folder above ``eval_area<k>``); a run folder with one
  ``eval_area<k>`` inside, or the ``predictions`` folder itself, work too;
- a single prediction file ``Area_<k>_<room>.npz`` (xyz, rgb, label, pred);
- a room without predictions: a prepared cache file (``data/s3dis/Area_5/office_1.npz``), a cache
  root with ``--room``, a raw room folder (``…/office_1/Annotations/*.txt``) or a PLY file (with
  optional ``label`` / ``pred`` vertex properties); predictions then come from ``--checkpoint``.
  A PLY written by ``pointseg predict`` (``label`` + ``confidence``) is a prediction: its
  ``label`` is drawn as the model's classes, not as ground truth.

Prediction files carry the room's points, so several evaluations of the same room are checked
to agree point for point before they are drawn side by side.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pointseg.errors import ConfigError, DataError
from visualize.scene import Scene

Print = Callable[[str], None]
_ROOM_FILE = re.compile(r"^(Area_\d+)_(.+)\.npz$")


@dataclass
class PredictionSet:
    """One model's predictions: room key (``Area_5_office_1``) → npz file."""

    name: str
    files: dict[str, Path]
    origin: Path


@dataclass
class RoomSource:
    """A room without predictions of its own (cache file, raw folder, PLY)."""

    path: Path
    key: str  # room key used to find matching predictions
    loader: Callable[[], dict[str, np.ndarray]]
    preds: dict[str, np.ndarray] = field(default_factory=dict)


def _natural(s: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


def _room_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.glob("*.npz"), key=lambda p: _natural(p.name))}


def _run_name(eval_dir: Path) -> str:
    """``checkpoints/res/eval_area5`` → ``res``; any other folder → its own name."""
    d = eval_dir.resolve()
    return d.parent.name if d.name.startswith("eval_") else d.name


def _file_model_name(path: Path) -> str:
    """Model name of one prediction file: its run (`<run>/eval_area5/predictions/x.npz`), its
    demo model folder (`predictions/<model>/x.npz`), else the file name."""
    parent = path.resolve().parent
    if parent.name == "predictions":
        return _run_name(parent.parent)
    if parent.parent.name == "predictions":
        return parent.name
    return path.stem


def _demo_order(folder: Path, names: list[str]) -> list[str]:
    try:
        order = list(json.loads((folder / "demo.json").read_text())["models"])
    except (OSError, ValueError, KeyError, TypeError):
        return names
    return [n for n in order if n in names] + [n for n in names if n not in order]


def _classify(path: Path, room: str | None) -> list[PredictionSet] | RoomSource:
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() == ".ply":
            return RoomSource(path, path.stem, lambda: _load_ply(path))
        if path.suffix.lower() == ".npz":
            try:
                with np.load(path, allow_pickle=False) as z:
                    keys = set(z.files)
            except Exception as exc:
                raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
            if "pred" in keys:
                return [PredictionSet(_file_model_name(path), {_room_key(path): path}, path)]
            return RoomSource(path, _room_key(path), lambda: _load_cache(path))
        raise DataError(
            f"{path}: not a room or prediction file (expected .npz or .ply, or a folder)"
        )
    if (path / "Annotations").is_dir():
        return RoomSource(path, f"{path.parent.name}_{path.name}", lambda: _load_raw(path))
    if (path / "index.json").is_file():
        return _cache_room(path, room)
    if path.name == "predictions" and any(path.glob("*.npz")):
        return [PredictionSet(_run_name(path.parent), _room_files(path), path)]
    pred_dir = path / "predictions"
    if pred_dir.is_dir():
        flat = _room_files(pred_dir)
        if flat:
            return [PredictionSet(_run_name(path), flat, path)]
        subs = [d for d in sorted(pred_dir.iterdir()) if d.is_dir() and _room_files(d)]
        if subs:  # demo layout: predictions/<model>/
            order = _demo_order(path, [d.name for d in subs])
            return [PredictionSet(n, _room_files(pred_dir / n), path) for n in order]
    evals = sorted(d for d in path.glob("eval_area*") if (d / "predictions").is_dir())
    if len(evals) == 1:
        return [PredictionSet(path.name, _room_files(evals[0] / "predictions"), evals[0])]
    if len(evals) > 1:
        raise DataError(
            f"{path}: several evaluations ({', '.join(d.name for d in evals)}); pass one of them"
        )
    if any(path.glob("*.npz")) and not any(path.glob("*/")):
        return [PredictionSet(_run_name(path), _room_files(path), path)]
    raise DataError(
        f"{path}: no predictions found. Expected a demo report folder (predictions/<model>/*.npz), "
        "an evaluation output (eval_area<k>/predictions/Area_<k>_<room>.npz, written by "
        "`pointseg eval` unless --no-predictions), a room cache, a raw room folder (Annotations/), "
        "or a .npz / .ply file"
    )


def _room_key(path: Path) -> str:
    """``…/Area_5/office_1.npz`` (cache) and ``Area_5_office_1.npz`` (predictions) → same key."""
    if _ROOM_FILE.match(path.name):
        return path.stem
    if path.parent.name.startswith("Area_"):
        return f"{path.parent.name}_{path.stem}"
    return path.stem


def _cache_room(root: Path, room: str | None) -> RoomSource:
    from pointseg.data.s3dis import list_rooms

    rooms = list_rooms(root)
    keys = {f"{r['area']}_{r['room']}": Path(r["path"]) for r in rooms}
    if room is None:
        raise ConfigError(
            f"{root} is a room cache of {len(keys)} rooms: pick one with --room "
            f"(e.g. --room {next(iter(keys), 'Area_5_office_1')})"
        )
    key = _match_room(room, list(keys), str(root))
    return RoomSource(keys[key], key, lambda: _load_cache(keys[key]))


def _match_room(room: str, keys: Sequence[str], where: str) -> str:
    """``office_1``, ``Area_5/office_1`` or ``Area_5_office_1`` → the one matching key."""
    want = room.replace("/", "_").removesuffix(".npz")
    exact = [k for k in keys if k == want]
    if exact:
        return exact[0]
    short = [k for k in keys if re.sub(r"^Area_\d+_", "", k) == want]
    if len(short) == 1:
        return short[0]
    shown = ", ".join(keys[:40]) + (f", … ({len(keys)} in all)" if len(keys) > 40 else "")
    if len(short) > 1:
        raise DataError(f"room {room!r} is ambiguous in {where}: {', '.join(short)}; name the area")
    raise DataError(f"unknown room {room!r} in {where}; available: {shown or 'none'}")


# ------------------------------------------------------------------------------ loaders
def _load_cache(path: Path) -> dict[str, np.ndarray]:
    from pointseg.data.s3dis import load_room

    return load_room(path)


def _load_raw(path: Path) -> dict[str, np.ndarray]:
    from pointseg.data.s3dis import parse_room

    room, _ = parse_room(path)
    return {"xyz": room.xyz, "rgb": room.rgb, "label": room.label}


_LABEL_PROPS = ("label", "class", "scalar_label", "semantic")


def _load_ply(path: Path) -> dict[str, np.ndarray]:
    from pointseg.data.ply import read_ply

    data = read_ply(path)
    out = {"xyz": data["xyz"]}
    if "rgb" in data:
        out["rgb"] = data["rgb"]
    if "confidence" in data and "pred" not in data and "label" in data:
        # `pointseg predict` output: its `label` is the model's class, not ground truth
        # (and its ground truth, when the input had labels, is `gt`)
        out["pred"] = data["label"]
        if "gt" in data:
            out["label"] = data["gt"]
        return out
    for name in _LABEL_PROPS:
        if name in data:
            out["label"] = data[name]
            break
    if "pred" in data:
        out["pred"] = data["pred"]
    return out


def _load_prediction(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:
        raise DataError(f"{path}: not a readable prediction file ({exc})") from exc
    missing = [k for k in ("xyz", "pred") if k not in data]
    if missing:
        raise DataError(
            f"{path}: prediction file lacks {missing}; expected xyz, rgb, label, pred "
            "(written by `pointseg eval`)"
        )
    return data


# ------------------------------------------------------------------------------ scene
def load_scene(
    inputs: Sequence[str | Path],
    *,
    room: str | None = None,
    names: Sequence[str] | None = None,
    checkpoints: Sequence[str | Path] = (),
    stride: float = 0.5,
    device: str | None = None,
    progress: bool = True,
    print_fn: Print | None = print,
) -> Scene:
    """The scene to draw: the room's points and labels, and one prediction per model."""
    say = print_fn or (lambda s: None)
    if not inputs:
        raise ConfigError("pointseg view: give at least one input (a report, eval output or room)")
    sets: list[PredictionSet] = []
    rooms: list[RoomSource] = []
    for item in inputs:
        got = _classify(Path(item), room)
        if isinstance(got, RoomSource):
            rooms.append(got)
        else:
            sets += got
    if len(rooms) > 1:
        raise ConfigError(
            f"pointseg view: several rooms given ({', '.join(str(r.path) for r in rooms)}); "
            "give one room and any number of prediction sets / --checkpoint"
        )

    base: dict[str, np.ndarray]
    base_path: Path
    preds: dict[str, np.ndarray] = {}
    pred_paths: dict[str, Path] = {}
    if rooms:
        src = rooms[0]
        key = src.key
        base, base_path = src.loader(), src.path
        if "pred" in base:  # e.g. a PLY exported by `pointseg view --export-ply`
            preds[src.path.stem] = base.pop("pred")
            pred_paths[src.path.stem] = src.path
        if sets:
            key = _match_room(room or key, _common_rooms(sets), "the prediction sets")
    elif sets:
        common = _common_rooms(sets)
        if not common:
            raise DataError(
                "the prediction sets share no room: "
                + "; ".join(f"{s.origin}: {', '.join(s.files) or 'none'}" for s in sets)
            )
        if room is None:
            key = common[0]
            if len(common) > 1:
                say(f"[view] room {key} (others: {', '.join(common[1:])}; pick with --room)")
        else:
            key = _match_room(room, common, "the prediction sets")
        base_path = sets[0].files[key]
        base = _load_prediction(base_path)
    else:
        raise ConfigError("pointseg view: no room found in the inputs")
    if len(np.asarray(base["xyz"]).reshape(-1)) == 0:
        raise DataError(f"{base_path}: the point cloud has no points; nothing to show")
    for s in sets:
        path = s.files[key]
        data = base if path == base_path else _load_prediction(path)
        _check_same_room(base, base_path, data, path)
        name = _unique(s.name, preds)
        preds[name], pred_paths[name] = data["pred"], path

    label = base.get("label")
    for ckpt in checkpoints:
        name, pred = predict_with_checkpoint(
            ckpt, base, stride=stride, device=device, progress=progress, print_fn=say
        )
        preds[_unique(name, preds)] = pred
    if names:
        if len(names) > len(preds):
            raise ConfigError(
                f"--name gives {len(names)} names but there are {len(preds)} models "
                f"({', '.join(preds) or 'none'})"
            )
        renamed = list(names) + list(preds)[len(names) :]
        if len(set(renamed)) != len(renamed):
            raise ConfigError(f"--name: panel names must differ; got {renamed}")
        preds = dict(zip(renamed, preds.values(), strict=True))
    title = re.sub(r"^(Area_\d+)_", r"\1/", key)
    return Scene(
        xyz=base["xyz"],
        rgb=base.get("rgb"),
        label=label,
        preds=preds,
        title=title,
    )


def _unique(name: str, taken: dict) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name} ({i})", i + 1
    return out


def _common_rooms(sets: Sequence[PredictionSet]) -> list[str]:
    keys = set(sets[0].files)
    for s in sets[1:]:
        keys &= set(s.files)
    return sorted(keys, key=_natural)


def _check_same_room(
    base: dict[str, np.ndarray], base_path: Path, data: dict[str, np.ndarray], path: Path
) -> None:
    n, m = len(base["xyz"]), len(data["pred"])
    if n != m:
        raise DataError(
            f"{path}: {m:,} predicted points but the room ({base_path}) has {n:,}; predictions "
            "must be of the same room with every point (re-run `pointseg eval` on the same cache)"
        )
    if "xyz" in data and data is not base:
        a = np.asarray(base["xyz"], dtype=np.float64)
        b = np.asarray(data["xyz"], dtype=np.float64)
        if not np.allclose(a, b, atol=1e-4):
            raise DataError(
                f"{path}: same number of points as {base_path} but different coordinates; "
                "the predictions belong to another room or another point order"
            )


def predict_with_checkpoint(
    checkpoint: str | Path,
    room: dict[str, np.ndarray],
    *,
    stride: float = 0.5,
    device: str | None = None,
    progress: bool = True,
    print_fn: Print | None = print,
) -> tuple[str, np.ndarray]:
    """Whole-room prediction of `room` by a segmentation checkpoint (the eval protocol)."""
    from pointseg.engine import evaluate as ev

    say = print_fn or (lambda s: None)
    path = ev.resolve_checkpoint(checkpoint)
    model, ckpt = ev._load(path)
    names = ev._s3dis_class_names(ckpt, path)
    from pointseg.recipe import checkpoint_recipe, stored_recipe

    recipe = checkpoint_recipe(ckpt, str(path))  # the model's own inputs (pointseg.recipe)
    data = ev._meta_data(ckpt)
    num_point = recipe.num_point
    if stored_recipe(ckpt, str(path)) is None:
        num_point = int(data.get("num_point") or ev._run_config(path).get("num_points") or 4096)
    xyz = np.asarray(room["xyz"], dtype=np.float32)
    rgb = room.get("rgb")
    if rgb is None:
        rgb = np.full((len(xyz), 3), 128, dtype=np.uint8)
    say(f"[view] predicting {len(xyz):,} points with {path} ({num_point} points per block)")
    res = ev.predict_room(
        model,
        xyz,
        rgb,
        room.get("label"),
        num_classes=len(names),
        num_point=num_point,
        block_size=recipe.block_size,
        min_points=recipe.min_points,
        centering=recipe.centering,
        stride=stride,
        device=device,
        progress=progress,
    )
    name = path.parent.name if path.name in ("best.pt", "last.pt") else path.stem
    return name, res.pred
