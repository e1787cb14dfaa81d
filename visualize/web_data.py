"""What the browser viewer is sent: a `Scene` as one JSON description and one binary blob.

The page (`visualize/web/`) colours points on the GPU from labels, so the data holds each display
point once, whatever the number of panels or colourings:

    pos    uint16 x 3   coordinates quantised to the display points' bounding box (2^16 steps:
                        0.15 mm on a 10 m room)
    rgb    uint8 x 3    scanned colours (absent when the room has none)
    gt     uint8/16     ground-truth class (absent without labels)
    pred_i uint8/16     model i's prediction

Everything the page states about quality (per-class IoU, OA, mAcc, mIoU, the point counts of the
`diff` legend) is computed here on EVERY point of the room; only the drawing uses the display
downsample (`display_index`: one point per voxel, the same points in every panel, within a budget
of points in all panels together, said on screen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pointseg.errors import DataError
from visualize.scene import (
    CEILING,
    CEILING_CUT,
    COLORINGS,
    CORRECT_COLOR,
    DIFF_COLORS,
    NO_RGB_COLOR,
    VIEWS,
    WRONG_COLOR,
    Scene,
    auto_voxel,
    check_coloring,
    diff_category,
    panel_title,
    voxel_index,
)
from visualize.static import COLORING_TITLES

# Points drawn in all panels together, by default: a 1 M point page is a ~5 MB file and redraws
# in well under a second even in software WebGL (benchmarks/web_view.py).
WEB_BUDGET = 1_000_000
FORMAT_VERSION = 1


@dataclass
class Payload:
    """The page's description (`meta`, JSON-able) and its binary arrays (`blob`)."""

    meta: dict
    blob: bytes
    index: np.ndarray | None = None  # the display points (room indices, in the page's order)


def display_index(
    scene: Scene, budget: int = WEB_BUDGET, voxel: float | None = None
) -> tuple[float, np.ndarray]:
    """(voxel edge, sorted indices of the display points).

    `voxel` None: every point while the panels together stay within `budget` points, else one
    point per voxel of the smallest edge that fits (`scene.auto_voxel`); `voxel` 0: every point;
    `voxel` > 0: that edge."""
    if voxel is not None:
        v = max(float(voxel), 0.0)
        return v, (voxel_index(scene.xyz, v) if v > 0 else np.arange(scene.num_points))
    return auto_voxel(scene.xyz, max(int(budget) // max(len(scene.panels), 1), 1))


def check_not_empty(scene: Scene, source: str = "") -> None:
    if scene.num_points == 0:
        raise DataError(f"{source or scene.title or 'the room'}: the point cloud has no points")


class _Blob:
    """Arrays appended at 4-byte aligned offsets, described as {offset, count, type, comps}."""

    TYPES = {np.dtype(np.uint8): "u8", np.dtype(np.uint16): "u16"}

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.arrays: dict[str, dict] = {}

    def add(self, name: str, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a)
        pad = -self.size % 4
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad
        comps = 1 if a.ndim == 1 else int(a.shape[1])
        self.arrays[name] = {
            "offset": self.size,
            "count": int(a.shape[0]),
            "type": self.TYPES[a.dtype],
            "comps": comps,
        }
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        self.parts.append(data)
        self.size += len(data)

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _rgb(c) -> list[int]:
    return [int(v) for v in np.asarray(c).reshape(3)]


def _pct(x: float) -> float | None:
    return None if not np.isfinite(x) else round(100.0 * float(x), 2)


def quantize(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint16 (m, 3), lo, hi): xyz ≈ lo + q / 65535 * (hi - lo)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.rint((xyz - lo) / span * 65535.0)
    return np.clip(q, 0, 65535).astype(np.uint16), lo, lo + span


def dequantize(q: np.ndarray, lo, hi) -> np.ndarray:
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    return lo + q.astype(np.float64) / 65535.0 * (hi - lo)


def build_payload(
    scene: Scene,
    *,
    coloring: str = "pred",
    view: str = "top",
    hide_ceiling: bool = True,
    isolate: int | None = None,
    pair: tuple[str, str] | None = None,
    point_size: float = 3.0,
    budget: int = WEB_BUDGET,
    voxel: float | None = None,
) -> Payload:
    """Everything the browser viewer draws for `scene`, starting in the given state."""
    from visualize.viewer import CAMERAS

    check_not_empty(scene)
    check_coloring(scene, coloring, pair)
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
    v, index = display_index(scene, budget, voxel)
    # random order: the page's level of detail while the camera moves draws a prefix of the points
    index = index[np.random.default_rng(0).permutation(len(index))]
    blob = _Blob()
    q, lo, hi = quantize(scene.xyz[index])
    blob.add("pos", q)
    if scene.rgb is not None:
        blob.add("rgb", scene.rgb[index].astype(np.uint8))
    ncls = len(scene.class_names)
    ltype = np.uint8 if ncls <= 256 else np.uint16
    if scene.label is not None:
        blob.add("gt", scene.label[index].astype(ltype))
    for i, m in enumerate(scene.models):
        blob.add(f"pred{i}", scene.preds[m][index].astype(ltype))

    has_gt = scene.label is not None
    counts = np.bincount(scene.label, minlength=ncls) if has_gt else None
    confusions = {m: scene.confusion(m) for m in scene.models} if has_gt else {}
    ious = {m: cm.iou() for m, cm in confusions.items()}
    classes = []
    for c in scene.present_classes():
        classes.append(
            {
                "id": int(c),
                "name": scene.class_names[c],
                "color": _rgb(scene.palette[c]),
                "gt_points": int(counts[c]) if counts is not None else None,
                "iou": {m: _pct(ious[m][c]) for m in confusions},  # NaN (no union) -> None
            }
        )
    metrics = {
        m: {"oa": _pct(cm.oa()), "macc": _pct(cm.macc()), "miou": _pct(cm.miou())}
        for m, cm in confusions.items()
    }
    colorings = {}
    for mode in COLORINGS:
        try:
            check_coloring(scene, mode, pair if mode == "diff" else None)
            colorings[mode] = {"ok": True, "title": COLORING_TITLES[mode]}
        except Exception as exc:  # e.g. diff with one model: the button says why
            colorings[mode] = {"ok": False, "title": COLORING_TITLES[mode], "why": str(exc)}
    if scene.label is None and not scene.preds:  # a bare scan: its colours are all there is
        colorings["pred"] = {"ok": False, "title": COLORING_TITLES["pred"],
                             "why": "no labels: this room has no ground truth and no predictions"}  # fmt: skip
        if coloring == "pred":
            coloring = "rgb"
    diff_counts: dict[str, list[int]] = {}
    models = scene.models
    if len(models) >= 2 and len(models) <= 8:
        for a in models:
            for b in models:
                if a != b:
                    cat = np.bincount(diff_category(scene, a, b), minlength=4)
                    diff_counts[f"{a}\t{b}"] = [int(x) for x in cat]
    diff = list(scene.diff_pair(pair)) if len(models) >= 2 else None

    panels = []
    for p in scene.panels:
        panels.append(
            {
                "name": p,
                "title": panel_title(scene, p),
                "model": scene.is_model(p),
                "pred": models.index(p) if scene.is_model(p) else None,
            }
        )
    z = scene.xyz[:, 2]
    zlo, zhi = float(z.min()), float(z.max())
    cameras = {}
    for name, (front, up) in CAMERAS.items():
        cameras[name] = camera_angles(front, up)
    meta = {
        "format": FORMAT_VERSION,
        "title": scene.title or "room",
        "num_points": scene.num_points,
        "shown": int(len(index)),
        "voxel": float(v),
        "budget": int(budget),
        "panels": panels,
        "models": models,
        "has_gt": has_gt,
        "has_rgb": scene.rgb is not None,
        "class_names": list(scene.class_names),
        "palette": [_rgb(c) for c in scene.palette],
        "classes": classes,
        "metrics": metrics,
        "colorings": colorings,
        "coloring_order": list(COLORINGS),
        "diff": diff,
        "diff_counts": diff_counts,
        "colors": {
            "correct": _rgb(CORRECT_COLOR),
            "wrong": _rgb(WRONG_COLOR),
            "diff": [_rgb(c) for c in DIFF_COLORS],
            "no_rgb": _rgb(NO_RGB_COLOR),
        },
        "ceiling": int(CEILING) if "ceiling" in scene.class_names else -1,
        "ceiling_z": zlo + CEILING_CUT * (zhi - zlo),
        "lo": [float(x) for x in lo],
        "hi": [float(x) for x in hi],
        "cameras": cameras,
        "views": list(VIEWS),
        "arrays": blob.arrays,
        "blob_bytes": blob.size,
        "initial": {
            "coloring": coloring,
            "view": view,
            "hide_ceiling": bool(hide_ceiling),
            "isolate": None if isolate is None else int(isolate),
            "point_size": float(point_size),
        },
    }
    return Payload(meta, blob.bytes(), index)


def camera_angles(front, up) -> dict[str, float]:
    """Yaw / pitch (degrees) of the page's orbit camera for an Open3D (front, up) preset.

    The page's camera looks along -front with front = (cos p cos y, cos p sin y, sin p), screen
    right = (-sin y, cos y, 0) and screen up = front x right; looking straight down (top), the
    yaw is what puts the preset's `up` at the top of the screen."""
    f = np.asarray(front, dtype=np.float64)
    f = f / np.linalg.norm(f)
    if np.hypot(f[0], f[1]) > 1e-9:
        yaw = np.arctan2(f[1], f[0])
    else:  # vertical: screen up = (-cos y, -sin y, 0) * sign(f_z)
        u = np.asarray(up, dtype=np.float64) * np.sign(f[2])
        yaw = np.arctan2(-u[1], -u[0])
    return {
        "yaw": float(np.degrees(yaw)),
        "pitch": float(np.degrees(np.arcsin(np.clip(f[2], -1.0, 1.0)))),
    }


def decode_array(meta: dict, blob: bytes, name: str) -> np.ndarray:
    """An array of the blob back as numpy (what the page reads; used by the tests)."""
    spec = meta["arrays"][name]
    dtype = {"u8": "<u1", "u16": "<u2"}[spec["type"]]
    n = spec["count"] * spec["comps"]
    a = np.frombuffer(blob, dtype=dtype, count=n, offset=spec["offset"])
    return a.reshape(spec["count"], spec["comps"]) if spec["comps"] > 1 else a
