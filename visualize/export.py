"""PLY export: one binary PLY per panel, coloured as the viewer colours it.

Each file holds every point of the room (never the display downsample) at its original
coordinates, `red/green/blue` from the chosen colouring, and the integer vertex properties
`label` (ground truth, when known) and `pred` (model panels). Open3D, CloudCompare and MeshLab
open them; `pointseg view <file>.ply` reads them back (its `pred` becomes a model panel).
Written by `pointseg.data.ply.write_ply` (binary little-endian, atomic).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from visualize.scene import Scene, check_coloring, panel_colors


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "panel"


def export_ply(
    scene: Scene,
    out_dir: str | os.PathLike,
    *,
    coloring: str = "pred",
    pair: tuple[str, str] | None = None,
) -> list[Path]:
    """Write `<out_dir>/<room>_<panel>.ply` for every panel; returns the paths, left to right."""
    from pointseg.data.ply import write_ply

    check_coloring(scene, coloring, pair)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    room = _slug(scene.title or "room")
    paths = []
    for panel in scene.panels:
        props: dict[str, np.ndarray] = {}
        if scene.label is not None:
            props["label"] = scene.label.astype(np.int32)
        if scene.is_model(panel):
            props["pred"] = scene.preds[panel].astype(np.int32)
        path = out / f"{room}_{_slug(panel)}.ply"
        rgb = np.ascontiguousarray(panel_colors(scene, panel, coloring, pair), dtype=np.uint8)
        classes = " ".join(f"{i}={n}" for i, n in enumerate(scene.class_names))
        comments = (
            f"pointseg view: {scene.title} / {panel}, colouring {coloring}",
            f"classes {classes}",
        )
        write_ply(path, scene.xyz, rgb=rgb, comments=comments, **props)
        paths.append(path)
    return paths
