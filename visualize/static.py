"""The matplotlib renderer: the viewer's comparison as a static figure, without OpenGL.

`pointseg view --no-window` and the demo's ``comparison.png`` both come from `render_static`, so
reports and machines without a display get the same panels, colours (`visualize.scene`), labels
and legend as the Open3D window.

Every panel shows the same points under the same camera (shared axis limits). The top view is
drawn as a 2-D scatter sorted by height, so higher surfaces cover lower ones as seen from above —
with the ceiling hidden that is a floor plan with the furniture on it; `iso` and `front` use
matplotlib's 3-D axes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from visualize.scene import (
    COLORINGS,
    VIEWS,
    Scene,
    check_coloring,
    legend,
    panel_colors,
    panel_title,
    visible_mask,
)

# matplotlib's 3-D view angles matching the Open3D cameras of visualize.viewer.
VIEW_ANGLES = {"iso": (40.0, -90.0), "front": (8.0, -90.0)}

COLORING_TITLES = {
    "rgb": "scanned colours",
    "gt": "ground truth in every panel",
    "pred": "classes",
    "errors": "errors: grey correct, red wrong",
    "diff": "difference between two models",
}


def render_static(
    scene: Scene,
    path: str | os.PathLike,
    *,
    coloring: str = "pred",
    view: str = "top",
    hide_ceiling: bool = True,
    isolate: int | None = None,
    pair: tuple[str, str] | None = None,
    point_size: float | None = None,
    max_points: int = 60_000,
    panel_inches: float = 5.0,
    dpi: int = 100,
) -> Path:
    """Draw every panel of `scene` side by side into a PNG (atomic write); returns the path.

    Args:
        coloring: one of `COLORINGS`; view: one of `VIEWS`.
        hide_ceiling: drop ceiling points (by ground truth; by height without labels).
        point_size: matplotlib marker area in pt²; default grows as fewer points are shown.
        max_points: points drawn per panel (the same random subset in every panel).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from pointseg.io import atomic_write

    check_coloring(scene, coloring, pair)
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
    n = scene.num_points
    index = np.arange(n)
    if n > max_points:
        index = np.sort(np.random.default_rng(0).choice(n, max_points, replace=False))
    panels = scene.panels
    xyz = scene.xyz[index].astype(np.float64)
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    top = view == "top"
    aspect = span[1] / span[0] if top else 0.75
    height = min(max(panel_inches * aspect, 2.5), 2.2 * panel_inches)
    fig = Figure(figsize=(panel_inches * len(panels), height + 1.3))
    for i, panel in enumerate(panels):
        keep = visible_mask(scene, panel, index, hide_ceiling=hide_ceiling, isolate=isolate)
        sel = index[keep]
        p = scene.xyz[sel]
        c = panel_colors(scene, panel, coloring, pair)[sel] / 255.0
        size = (
            point_size
            if point_size is not None
            else float(np.clip(8e4 / max(len(sel), 1), 0.3, 12))
        )
        if top:
            ax = fig.add_subplot(1, len(panels), i + 1)
            order = np.argsort(p[:, 2], kind="stable")  # higher points drawn last: seen from above
            ax.scatter(p[order, 0], p[order, 1], c=c[order], s=size, linewidths=0, marker="s")
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            ax.set_aspect("equal")
        else:
            ax = fig.add_subplot(1, len(panels), i + 1, projection="3d")
            ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=c, s=size, linewidths=0, depthshade=False)
            elev, azim = VIEW_ANGLES[view]
            ax.view_init(elev=elev, azim=azim)
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            ax.set_zlim(lo[2], hi[2])
            ax.set_box_aspect(span)
        ax.set_axis_off()
        ax.set_title(panel_title(scene, panel), fontsize=12)
    entries = legend(scene, coloring, pair)
    if entries:
        handles = [Patch(color=rgb / 255.0, label=text) for rgb, text in entries]
        ncol = min(len(handles), max(4, 3 * len(panels)))
        fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=9, frameon=False)
    what = COLORING_TITLES[coloring] + (", ceiling hidden" if hide_ceiling else "")
    fig.suptitle(f"{scene.title} — {what} ({view} view)", fontsize=13)
    rows = (len(entries) + max(4, 3 * len(panels)) - 1) // max(4, 3 * len(panels)) if entries else 0
    bottom = min(0.08 + 0.05 * rows, 0.3)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=bottom, wspace=0.04)
    path = Path(path)
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return path


__all__ = ["render_static", "COLORINGS", "VIEWS"]
