"""A small synthetic room with two prediction sets, made wrong on purpose where the tests look."""

from __future__ import annotations

import numpy as np
import pytest

from pointseg.data.s3dis import CLASSES

FLOOR, CEILING, WALL, TABLE, CHAIR = (
    CLASSES.index(c) for c in ("floor", "ceiling", "wall", "table", "chair")
)
WRONG_X = 1.5  # model "bad" calls the floor left of x = 1.5 m a wall


def _grid(xs, ys):
    x, y = np.meshgrid(xs, ys, indexing="ij")
    return x.ravel(), y.ravel()


def make_room(step: float = 0.05) -> dict[str, np.ndarray]:
    """4 x 3 m room, 2.5 m high: floor, ceiling, two walls, a table. xyz float32, label uint8."""
    xs, ys, zs = np.arange(0, 4 + 1e-9, step), np.arange(0, 3 + 1e-9, step), np.arange(0, 2.5, step)
    parts = []
    fx, fy = _grid(xs, ys)
    parts.append((np.c_[fx, fy, np.zeros_like(fx)], FLOOR))
    parts.append((np.c_[fx, fy, np.full_like(fx, 2.5)], CEILING))
    for wx in (0.0, 4.0):
        wy, wz = _grid(ys, zs)
        parts.append((np.c_[np.full_like(wy, wx), wy, wz], WALL))
    tx, ty = _grid(np.arange(2.5, 3.5, step), np.arange(1.0, 2.0, step))
    parts.append((np.c_[tx, ty, np.full_like(tx, 0.8)], TABLE))
    xyz = np.concatenate([p for p, _ in parts]).astype(np.float32)
    label = np.concatenate([np.full(len(p), c) for p, c in parts]).astype(np.uint8)
    rng = np.random.default_rng(0)
    rgb = rng.integers(60, 200, size=(len(xyz), 3)).astype(np.uint8)
    good = label.copy()
    good[(label == TABLE) & (xyz[:, 0] < 3.0)] = CHAIR
    bad = label.copy()
    bad[(label == FLOOR) & (xyz[:, 0] < WRONG_X)] = WALL
    return {"xyz": xyz, "rgb": rgb, "label": label, "good": good, "bad": bad}


@pytest.fixture(scope="module")
def room() -> dict[str, np.ndarray]:
    return make_room()


def write_eval(root, run: str, room: dict, pred: np.ndarray, name: str = "Area_1_room_1"):
    """`<root>/<run>/eval_area1/predictions/<name>.npz` as `pointseg eval` writes it."""
    folder = root / run / "eval_area1"
    (folder / "predictions").mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "predictions" / f"{name}.npz",
        xyz=room["xyz"],
        rgb=room["rgb"],
        label=room["label"],
        pred=pred.astype(np.uint8),
        prob_max=np.ones(len(pred), dtype=np.float32),
    )
    return folder
