"""ModelNet grid view: test shapes in a grid, each with its true and predicted class.

`pointseg view <run>/eval_modelnet40` reads the evaluation's `metrics.json` (checkpoint, data
folder, points per shape, classes), classifies an evenly spaced selection of test shapes with
that checkpoint and shows them in one Open3D window (or `--screenshot` / `--no-window`).
Correctly classified shapes are drawn blue, wrong ones red with their label in red.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointseg.errors import ConfigError, DataError

RIGHT_COLOR = (40, 110, 200)
WRONG_COLOR = (220, 20, 20)
CELL = 2.6  # grid pitch in units of the shapes' radius (shapes are in the unit sphere)


@dataclass
class ShapeGrid:
    points: np.ndarray  # (S, P, 3) float32, each in the unit sphere
    label: np.ndarray  # (S,) int64
    pred: np.ndarray  # (S,) int64
    class_names: list[str]
    title: str

    @property
    def wrong(self) -> np.ndarray:
        return self.pred != self.label

    def offsets(self, cols: int | None = None) -> np.ndarray:
        """(S, 3) grid offsets in the x-z plane (seen from the front), rows from the top."""
        s = len(self.label)
        cols = cols or max(1, math.ceil(math.sqrt(s * 1.6)))
        return np.array([[(i % cols) * CELL, 0.0, -(i // cols) * CELL * 1.15] for i in range(s)])

    def caption(self, i: int) -> str:
        t, p = self.class_names[self.label[i]], self.class_names[self.pred[i]]
        return t if t == p else f"{t} → {p}"


def is_modelnet_eval(path: Path) -> bool:
    try:
        metrics = json.loads((Path(path) / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and metrics.get("dataset") == "modelnet40"


def load_shapes(
    eval_dir: str | os.PathLike, count: int = 24, *, device: str | None = None
) -> ShapeGrid:
    """Classify `count` evenly spaced test shapes with the evaluated checkpoint."""
    import torch

    from pointseg.engine import evaluate as ev

    eval_dir = Path(eval_dir)
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    try:
        ckpt_path = ev.resolve_checkpoint(metrics["checkpoint"])
        root = Path(metrics["data"])
        num_points = int(metrics.get("num_points") or 1024)
    except KeyError as exc:
        raise DataError(
            f"{eval_dir / 'metrics.json'}: no {exc} entry (not a `pointseg eval` output)"
        ) from None
    model, ckpt = ev._load(ckpt_path)
    ds, names = ev._modelnet_dataset(root, "test", num_points, ev._meta(ckpt).get("classes"))
    idx = np.unique(np.linspace(0, len(ds) - 1, min(count, len(ds))).round().astype(int))
    xs, ys = zip(*(ds[int(i)] for i in idx), strict=True)
    x = torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in xs])
    dev = ev.resolve_device(device)
    model.to(dev).eval()
    with torch.no_grad():
        pred = model(x.to(dev)).argmax(-1).cpu().numpy()
    pts = x.numpy()
    pts = pts - pts.mean(axis=1, keepdims=True)
    pts /= np.linalg.norm(pts, axis=2).max(axis=1)[:, None, None] + 1e-9
    return ShapeGrid(
        points=pts.astype(np.float32),
        label=np.asarray([int(y) for y in ys], dtype=np.int64),
        pred=pred.astype(np.int64),
        class_names=list(names),
        title=f"{ckpt_path.parent.name}: ModelNet test shapes ({root})",
    )


def _colors(grid: ShapeGrid) -> np.ndarray:
    return np.where(grid.wrong[:, None], WRONG_COLOR, RIGHT_COLOR).astype(np.uint8)  # (S, 3)


def _legend(grid: ShapeGrid) -> list[tuple[np.ndarray, str]]:
    n, w = len(grid.label), int(grid.wrong.sum())
    return [
        (np.array(RIGHT_COLOR), f"correct ({n - w})"),
        (np.array(WRONG_COLOR), f"wrong ({w}): true → predicted"),
    ]


def render_grid_static(
    grid: ShapeGrid, path: str | os.PathLike, *, cols: int | None = None
) -> Path:
    """matplotlib version of the grid (no OpenGL)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from pointseg.io import atomic_write

    s = len(grid.label)
    cols = cols or max(1, math.ceil(math.sqrt(s * 1.6)))
    rows = math.ceil(s / cols)
    fig = Figure(figsize=(2.2 * cols, 2.3 * rows + 0.8))
    colors = _colors(grid) / 255.0
    for i in range(s):
        ax = fig.add_subplot(rows, cols, i + 1, projection="3d")
        p = grid.points[i]
        ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=[colors[i]], s=1.5, linewidths=0, depthshade=False)
        ax.view_init(elev=20, azim=-60)
        ax.set_box_aspect((1, 1, 1))
        for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
            setter(-1, 1)
        ax.set_axis_off()
        ax.set_title(grid.caption(i), fontsize=9, color=colors[i] if grid.wrong[i] else "black")
    handles = [Patch(color=np.asarray(c) / 255.0, label=t) for c, t in _legend(grid)]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False)
    fig.suptitle(grid.title, fontsize=11)
    path = Path(path)
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path


def _open(grid: ShapeGrid, width: int, visible: bool):
    from visualize.display import ViewerUnavailable, import_open3d
    from visualize.viewer import BACKGROUND, fit_height, set_camera

    o3d = import_open3d()
    off = grid.offsets()
    pts = (grid.points + off[:, None, :]).reshape(-1, 3).astype(np.float64)
    col = np.repeat(_colors(grid), grid.points.shape[1], axis=0) / 255.0
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    lo[2] -= 0.45  # room for the captions under the last row
    height = fit_height(lo, hi, "front", width)
    vis = o3d.visualization.VisualizerWithKeyCallback()
    if not vis.create_window(
        "pointseg view: ModelNet", width=width, height=height, visible=visible
    ):
        raise ViewerUnavailable(
            "Open3D could not open an OpenGL window: run under `xvfb-run -a`, or use --no-window"
        )
    cloud = o3d.geometry.PointCloud()
    cloud.points = o3d.utility.Vector3dVector(np.vstack([pts, lo[None], hi[None]]))
    cloud.colors = o3d.utility.Vector3dVector(np.vstack([col, [BACKGROUND, BACKGROUND]]))
    vis.add_geometry(cloud)
    opt = vis.get_render_option()
    opt.background_color = np.asarray(BACKGROUND)
    opt.point_size = 2.0
    opt.light_on = False
    set_camera(vis, lo, hi, "front", width, height)
    return vis, lo, hi, height, off


def grid_screenshot(grid: ShapeGrid, path: str | os.PathLike, *, width: int = 1400) -> Path:
    from pointseg.io import atomic_write
    from visualize.compose import compose
    from visualize.display import display_for
    from visualize.viewer import make_camera

    with display_for(interactive=False):
        vis, lo, hi, height, off = _open(grid, width, visible=False)
        try:
            vis.poll_events()
            vis.update_renderer()
            frame = np.asarray(vis.capture_screen_float_buffer(do_render=True))
        finally:
            vis.destroy_window()
    frame = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
    cam = make_camera(lo, hi, "front", frame.shape[1], frame.shape[0])
    anchors = cam.project(off + np.array([0.0, 0.0, -1.05]))
    notes = [
        (float(u), float(v), grid.caption(i), WRONG_COLOR if grid.wrong[i] else (0, 0, 0))
        for i, (u, v) in enumerate(anchors)
    ]
    img = compose(frame, title=grid.title, labels=[], legend=_legend(grid), notes=notes)
    path = Path(path)
    with atomic_write(path, suffix=".png") as tmp:
        img.save(tmp, format="PNG")
    return path


def run(args: argparse.Namespace) -> int:
    """`pointseg view <modelnet eval output>`."""
    from pointseg.metrics import ConfusionMatrix

    unsupported = [
        flag
        for flag, given in (
            ("--room", args.room),
            ("--checkpoint", args.checkpoints),
            ("--export-ply", args.export_ply),
            ("--isolate", args.isolate),
            ("--diff", args.diff),
        )
        if given
    ]
    if unsupported:
        raise ConfigError(f"{', '.join(unsupported)}: not used by the ModelNet grid view")
    grid = load_shapes(args.inputs[0], args.shapes, device=args.device)
    cm = ConfusionMatrix(len(grid.class_names)).update(grid.pred, grid.label)
    print(
        f"{grid.title}: {len(grid.label)} shapes, {int(grid.wrong.sum())} wrong (OA {100 * cm.oa():.1f} on these)"
    )
    for i in np.flatnonzero(grid.wrong):
        print(f"  shape {i}: {grid.caption(i)}")
    if args.no_window:
        print(f"wrote {render_grid_static(grid, args.screenshot or 'pointseg_view.png')}")
        return 0
    if args.screenshot:
        print(f"wrote {grid_screenshot(grid, args.screenshot, width=args.width)}")
        return 0
    from visualize.display import display_for

    with display_for(interactive=True):
        vis, *_ = _open(grid, args.width, visible=True)
        print("mouse: drag to rotate, wheel to zoom; Q / Esc quits", file=sys.stderr)
        vis.run()
        vis.destroy_window()
    return 0
