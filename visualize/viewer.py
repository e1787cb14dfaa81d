"""The Open3D viewer: every panel of a `Scene` in ONE window, one camera, switchable colourings.

The panels are offset copies of the room along x (`scene.panel_offsets`), so they move
together under the single camera instead of drifting apart in separate windows. It uses Open3D's
legacy `VisualizerWithKeyCallback` (a GLFW window): it works under Xvfb, where
`capture_screen_float_buffer` reads the rendered frame back, while the Filament
`OffscreenRenderer` needs EGL/Vulkan (DESIGN §6). Open3D cannot draw 2-D text there, so the
interactive window labels the panels with 3-D text meshes and screenshots get the labels and the
legend drawn around the frame (`visualize.compose`).

Rooms of millions of points are shown through a voxel downsample (one point per voxel, the same
points in every panel); metrics, legends and exports always use every point.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visualize.compose import HEADER, compose
from visualize.display import ViewerUnavailable, display_for, import_open3d
from visualize.scene import (
    COLORINGS,
    VIEWS,
    Scene,
    auto_voxel,
    check_coloring,
    legend,
    panel_colors,
    panel_offsets,
    panel_title,
    visible_mask,
    voxel_index,
)
from visualize.static import COLORING_TITLES

Print = Callable[[str], None]

# Points drawn in all panels together before the display downsample switches itself on: software
# OpenGL (llvmpipe, Xvfb) stays interactive around this size.
DISPLAY_BUDGET = 3_000_000
# Open3D's smallest field of view (5 degrees) switches the legacy camera to an orthographic
# projection: every panel is seen identically, whatever its offset from the centre.
FIELD_OF_VIEW = 5.0
BACKGROUND = (1.0, 1.0, 1.0)

# (front, up) of each camera preset; `front` points from the scene to the camera.
CAMERAS = {
    "top": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
    "iso": ((0.0, -0.75, 0.9), (0.0, 0.0, 1.0)),
    "front": ((0.0, -1.0, 0.12), (0.0, 0.0, 1.0)),
}

KEY_BINDINGS: list[tuple[str, str]] = [
    ("1 / 2 / 3 / 4 / 5", "colour by RGB / ground truth / predictions / errors / difference"),
    ("Space", "next colouring"),
    ("C / X", "isolate the next / previous class"),
    ("A", "all classes again"),
    ("H", "hide / show the ceiling"),
    ("+ / -", "point size up / down"),
    ("V", "next camera (top, iso, front)"),
    ("R", "reset the camera"),
    ("S", "screenshot with labels and legend (pointseg_view_<n>.png)"),
    ("I", "print the legend and these keys again"),
    ("Q / Esc", "quit"),
]


@dataclass
class Camera:
    """The orthographic camera of a frame: world point → pixel (column, row)."""

    centre: np.ndarray  # (3,) look-at point, at the frame's centre
    right: np.ndarray  # (3,) unit vector along +column
    up: np.ndarray  # (3,) unit vector along -row
    scale: float  # pixels per metre
    width: int
    height: int

    def project(self, p: np.ndarray) -> np.ndarray:
        d = np.asarray(p, dtype=np.float64).reshape(-1, 3) - self.centre
        col = self.width / 2 + (d @ self.right) * self.scale
        row = self.height / 2 - (d @ self.up) * self.scale
        return np.stack([col, row], axis=1)


@dataclass
class Shot:
    """A written screenshot and how room points map onto it (for checks and tools)."""

    path: Path
    width: int
    height: int
    header: int  # rows above the rendered frame
    camera: Camera
    offsets: np.ndarray  # (P, 3) panel offsets

    def project(self, xyz: np.ndarray, panel: int) -> np.ndarray:
        """(m, 2) pixel (column, row) in the written image of room points shown in `panel`."""
        uv = self.camera.project(np.asarray(xyz, dtype=np.float64) + self.offsets[panel])
        return uv + np.array([0.0, self.header])


def camera_axes(view: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(front, up, right) unit vectors of the camera preset `view` (Open3D's convention)."""
    front, up = (np.asarray(v, dtype=np.float64) for v in CAMERAS[view])
    f = front / np.linalg.norm(front)
    u = up - f * (up @ f)
    u /= np.linalg.norm(u)
    return f, u, np.cross(u, f)


def screen_extent(lo: np.ndarray, hi: np.ndarray, view: str) -> tuple[float, float]:
    """Horizontal and vertical extent of the box (lo, hi) as the camera of `view` sees it."""
    _, u, right = camera_axes(view)
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    return float(np.ptp(corners @ right)), float(np.ptp(corners @ u))


def fit_height(lo: np.ndarray, hi: np.ndarray, view: str, width: int) -> int:
    """Window height that the box needs at `width` under the camera of `view`."""
    horizontal, vertical = screen_extent(lo, hi, view)
    return int(np.clip(width * vertical / max(horizontal, 1e-9) * 1.1, 240, 1200))


FILL = 0.94  # fraction of the window the box fills along its tighter direction


def fit_zoom(lo: np.ndarray, hi: np.ndarray, view: str, width: int, height: int) -> float:
    """Open3D zoom that fits the box. The legacy orthographic camera shows a half-height of
    zoom x (max extent of the scene's bounding box) around the look-at point."""
    horizontal, vertical = screen_extent(lo, hi, view)
    extent = float(np.max(hi - lo)) or 1.0
    return float(max(horizontal * height / width, vertical) / (2 * FILL * extent))


def make_camera(lo: np.ndarray, hi: np.ndarray, view: str, width: int, height: int) -> Camera:
    """The camera `set_camera` gives Open3D, as a projection to pixels."""
    _, u, right = camera_axes(view)
    half_height = fit_zoom(lo, hi, view, width, height) * (float(np.max(hi - lo)) or 1.0)
    return Camera((lo + hi) / 2, right, u, height / 2 / half_height, width, height)


def set_camera(vis, lo: np.ndarray, hi: np.ndarray, view: str, width: int, height: int) -> None:
    """Point Open3D's camera at the box (lo, hi) from the preset `view`, orthographic, fitted.

    Open3D's bounding box (the zoom unit) must be this box: add geometry covering it."""
    vc = vis.get_view_control()
    vc.change_field_of_view(step=(FIELD_OF_VIEW - vc.get_field_of_view()) / 5.0)
    front, up = CAMERAS[view]
    vc.set_lookat((lo + hi) / 2)
    vc.set_front(front)
    vc.set_up(up)
    vc.set_zoom(fit_zoom(lo, hi, view, width, height))


def choose_voxel(
    scene: Scene, voxel: float | None, budget: int | None = None
) -> tuple[float, np.ndarray]:
    """(voxel, display indices): `voxel` as given (0 = every point), or automatic when the
    panels together would exceed `budget` points (default `DISPLAY_BUDGET`)."""
    if voxel is not None:
        v = max(float(voxel), 0.0)
        return v, (voxel_index(scene.xyz, v) if v > 0 else np.arange(scene.num_points))
    budget = DISPLAY_BUDGET if budget is None else budget
    return auto_voxel(scene.xyz, budget // max(len(scene.panels), 1))


class Viewer:
    """Open3D window over a scene: build, recolour on keys, screenshot, run.

    Args:
        coloring: one of `COLORINGS`; view: one of `VIEWS`.
        voxel: display voxel edge in metres; None = automatic above `budget` points in all panels
            together (default `DISPLAY_BUDGET`); 0 = off.
        pair: the two models of the `diff` colouring (default first and last).
        height: window height in pixels; default: what the panels need at this width.
    """

    def __init__(
        self,
        scene: Scene,
        *,
        coloring: str = "pred",
        view: str = "top",
        hide_ceiling: bool = True,
        isolate: int | None = None,
        point_size: float = 3.0,
        voxel: float | None = None,
        budget: int | None = None,
        pair: tuple[str, str] | None = None,
        width: int = 1600,
        height: int | None = None,
        print_fn: Print | None = print,
    ) -> None:
        check_coloring(scene, coloring, pair)
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
        self.scene = scene
        self.coloring = coloring
        self.view = view
        self.hide_ceiling = hide_ceiling
        self.point_size = float(point_size)
        self.pair = pair
        self.width = int(width)
        self.isolate = isolate
        self.say = print_fn or (lambda s: None)
        self.voxel, self.index = choose_voxel(scene, voxel, budget)
        if voxel is None and self.voxel > 0:
            self.say(
                f"[view] {scene.num_points:,} points x {len(scene.panels)} panels: showing one point "
                f"per {100 * self.voxel:.1f} cm voxel ({len(self.index):,} per panel) to stay "
                "interactive; metrics and exports use every point (--voxel 0 shows all)"
            )
        self.offsets = panel_offsets(scene)
        self.xyz = scene.xyz[self.index].astype(np.float64)  # (m, 3) display points
        self._colors = {}  # (panel, coloring) -> (m, 3) float colours
        self.o3d = None
        self.vis = None
        self.clouds: list = []
        self._shots = 0
        self._label_band = 0.0
        self.height = int(height or fit_height(*self._bounds(), view, self.width))

    # ------------------------------------------------------------------ geometry
    def _panel_colors(self, panel: str) -> np.ndarray:
        key = (panel, self.coloring)
        if key not in self._colors:
            c = panel_colors(self.scene, panel, self.coloring, self.pair)[self.index]
            self._colors[key] = c.astype(np.float64) / 255.0
        return self._colors[key]

    def _fill(self, i: int, panel: str) -> None:
        o3d = self.o3d
        keep = visible_mask(
            self.scene, panel, self.index, hide_ceiling=self.hide_ceiling, isolate=self.isolate
        )
        cloud = self.clouds[i]
        cloud.points = o3d.utility.Vector3dVector(self.xyz[keep] + self.offsets[i])
        cloud.colors = o3d.utility.Vector3dVector(self._panel_colors(panel)[keep])

    def refresh(self) -> None:
        for i, panel in enumerate(self.scene.panels):
            self._fill(i, panel)
            self.vis.update_geometry(self.clouds[i])
        self.vis.get_render_option().point_size = self.point_size

    def open(self, visible: bool = True, title: str = "pointseg view") -> None:
        self.o3d = o3d = import_open3d()
        vis = o3d.visualization.VisualizerWithKeyCallback()
        names = " | ".join(self.scene.panels)
        if not vis.create_window(
            f"{title}: {names}", width=self.width, height=self.height, visible=visible
        ):
            raise ViewerUnavailable(
                f"Open3D could not open an OpenGL window on display {os.environ.get('DISPLAY')!r} "
                "(no OpenGL / GLX there?): run under `xvfb-run -a`, or use --no-window (matplotlib)"
            )
        self.vis = vis
        self.clouds = []
        for i in range(len(self.scene.panels)):
            cloud = o3d.geometry.PointCloud()
            self.clouds.append(cloud)
            # every display point first: Open3D's bounding box (its zoom unit) is then the same
            # whatever is hidden; `refresh` applies the visibility.
            cloud.points = o3d.utility.Vector3dVector(self.xyz + self.offsets[i])
            vis.add_geometry(cloud)
        self.refresh()
        opt = vis.get_render_option()
        opt.background_color = np.asarray(BACKGROUND)
        opt.point_size = self.point_size
        opt.light_on = False
        self.reset_view()

    def close(self) -> None:
        if self.vis is not None:
            self.vis.destroy_window()
            self.vis = None

    def reset_view(self) -> None:
        """The preset camera of `self.view`, zoomed so the panels fill the window."""
        set_camera(self.vis, *self._bounds(), self.view, self.width, self.height)

    def camera_now(self) -> Camera:
        """The camera of the current preset at the window's size (after `reset_view`)."""
        return make_camera(*self._bounds(), self.view, self.width, self.height)

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = self.xyz.min(axis=0) + self.offsets.min(axis=0)
        hi = self.xyz.max(axis=0) + self.offsets.max(axis=0)
        hi[1] += self._label_band  # room for the 3-D panel labels behind the rooms
        return lo, hi

    # ------------------------------------------------------------------ screenshots
    def screenshot(self, path: str | os.PathLike, *, poll: bool = True) -> Shot:
        """Render the current state, draw labels and legend around it, write a PNG atomically.

        `poll=False` inside a key callback (GLFW is already processing events there)."""
        from pointseg.io import atomic_write

        vis = self.vis
        if poll:
            vis.poll_events()
        vis.update_renderer()
        frame = np.asarray(vis.capture_screen_float_buffer(do_render=True))
        frame = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)
        camera = make_camera(*self._bounds(), self.view, frame.shape[1], frame.shape[0])  # (W, H)
        centre = (self.xyz.min(axis=0) + self.xyz.max(axis=0)) / 2
        labels = list(
            zip(
                camera.project(centre + self.offsets)[:, 0].tolist(),
                [panel_title(self.scene, p) for p in self.scene.panels],
                strict=True,
            )
        )
        img = compose(
            frame,
            title=self.caption(),
            labels=labels,
            legend=legend(self.scene, self.coloring, self.pair),
        )
        path = Path(path)
        with atomic_write(path, suffix=".png") as tmp:
            img.save(tmp, format="PNG")
        return Shot(path, img.width, img.height, HEADER, camera, self.offsets)

    def caption(self) -> str:
        parts = [self.scene.title or "room", COLORING_TITLES[self.coloring], f"{self.view} view"]
        if self.hide_ceiling:
            parts.append("ceiling hidden")
        if self.isolate is not None:
            parts.append(f"only {self.scene.class_names[self.isolate]}")
        if self.voxel > 0:
            parts.append(f"display voxel {100 * self.voxel:.1f} cm")
        return " — ".join(parts[:2]) + " (" + ", ".join(parts[2:]) + ")"

    # ------------------------------------------------------------------ interaction
    def _labels_3d(self) -> None:
        """Panel names as flat 3-D text above each panel (the window cannot draw 2-D text)."""
        o3d = self.o3d
        lo, hi = self.xyz.min(axis=0), self.xyz.max(axis=0)
        size = max(float(hi[0] - lo[0]), 1.0) * 0.06
        for i, panel in enumerate(self.scene.panels):
            try:
                mesh = o3d.t.geometry.TriangleMesh.create_text(
                    panel_title(self.scene, panel), depth=1
                )
                mesh = mesh.to_legacy()
            except Exception:  # text meshes need Open3D >= 0.16; the terminal names the panels
                return
            ext = mesh.get_max_bound() - mesh.get_min_bound()
            mesh.scale(size / max(ext[1], 1e-6), center=mesh.get_min_bound())
            mesh.translate((lo[0] + self.offsets[i][0], hi[1] + 0.3 * size, hi[2]), relative=False)
            mesh.translate(mesh.get_center() - mesh.get_min_bound())  # min corner at the target
            mesh.paint_uniform_color((0.1, 0.1, 0.1))
            mesh.compute_vertex_normals()
            self.vis.add_geometry(mesh, reset_bounding_box=False)
        self.vis.get_render_option().mesh_show_back_face = True  # readable from below too
        self._label_band = 1.8 * size

    def _bind(self) -> None:
        vis = self.vis

        def act(fn):
            def cb(_vis) -> bool:
                fn()
                self.refresh()
                return True

            return cb

        for key, mode in zip("12345", COLORINGS, strict=True):
            vis.register_key_callback(ord(key), act(lambda m=mode: self.set_coloring(m)))
        vis.register_key_callback(ord(" "), act(self.next_coloring))
        vis.register_key_callback(ord("C"), act(lambda: self.cycle_class(+1)))
        vis.register_key_callback(ord("X"), act(lambda: self.cycle_class(-1)))
        vis.register_key_callback(ord("A"), act(lambda: self.set_isolate(None)))
        vis.register_key_callback(ord("H"), act(self.toggle_ceiling))
        for code in (ord("="), ord("+"), 334):  # '=' / '+' / keypad +
            vis.register_key_callback(code, act(lambda: self.resize_points(+1)))
        for code in (ord("-"), 333):
            vis.register_key_callback(code, act(lambda: self.resize_points(-1)))
        vis.register_key_callback(ord("V"), act(self.next_view))
        vis.register_key_callback(ord("R"), act(self.reset_view))
        vis.register_key_callback(ord("S"), act(self.key_screenshot))
        vis.register_key_callback(ord("I"), act(lambda: self.say(summary(self.scene, keys=True))))

    def set_coloring(self, mode: str) -> None:
        try:
            check_coloring(self.scene, mode, self.pair)
        except Exception as exc:
            self.say(f"[view] {exc}")
            return
        self.coloring = mode
        self.say(f"[view] colouring: {COLORING_TITLES[mode]}")

    def next_coloring(self) -> None:
        start = COLORINGS.index(self.coloring)
        for step in range(1, len(COLORINGS) + 1):
            mode = COLORINGS[(start + step) % len(COLORINGS)]
            try:
                check_coloring(self.scene, mode, self.pair)
            except Exception:
                continue
            self.set_coloring(mode)
            return

    def set_isolate(self, cls: int | None) -> None:
        self.isolate = cls
        self.say(
            "[view] all classes" if cls is None else f"[view] only {self.scene.class_names[cls]}"
        )

    def cycle_class(self, step: int) -> None:
        present = self.scene.present_classes()
        if not present:
            return
        if self.isolate is None or self.isolate not in present:
            nxt = present[0] if step > 0 else present[-1]
        else:
            j = present.index(self.isolate) + step
            nxt = present[j] if 0 <= j < len(present) else None  # past the end: all classes
        self.set_isolate(nxt)

    def toggle_ceiling(self) -> None:
        self.hide_ceiling = not self.hide_ceiling
        self.say(f"[view] ceiling {'hidden' if self.hide_ceiling else 'shown'}")

    def resize_points(self, step: int) -> None:
        self.point_size = float(np.clip(self.point_size + step, 1, 20))
        self.say(f"[view] point size {self.point_size:.0f}")

    def next_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.reset_view()
        self.say(f"[view] camera: {self.view}")

    def key_screenshot(self) -> None:
        self._shots += 1
        path = Path(f"pointseg_view_{time.strftime('%Y%m%d_%H%M%S')}_{self._shots}.png")
        self.screenshot(path, poll=False)
        self.say(f"[view] wrote {path.resolve()}")

    def run(self) -> None:
        """Open the window and hand control to the user until it is closed."""
        self.open(visible=True)
        self._labels_3d()
        self._bind()
        self.reset_view()
        self.vis.run()
        self.close()


# ---------------------------------------------------------------------------- entry points
def summary(scene: Scene, *, keys: bool = False, color_swatches: bool | None = None) -> str:
    """Legend (class → colour, points) and per-class IoU of every model; key bindings."""
    from pointseg.engine.report import format_metrics_table

    swatch = color_swatches if color_swatches is not None else _ansi_ok()
    lines = [f"{scene.title or 'room'}: {scene.num_points:,} points; panels, left to right: "
             + " | ".join(scene.panels)]  # fmt: skip
    lines.append("legend (class: RGB colour, ground-truth points):")
    counts = (
        np.bincount(scene.label, minlength=len(scene.class_names))
        if scene.label is not None
        else None
    )
    for c in scene.present_classes():
        rgb = tuple(int(v) for v in scene.palette[c])
        box = f"\x1b[48;2;{rgb[0]};{rgb[1]};{rgb[2]}m    \x1b[0m " if swatch else ""
        n = f"{counts[c]:>10,}" if counts is not None else ""
        lines.append(f"  {box}{scene.class_names[c]:<9} {str(rgb):<16}{n}")
    if scene.preds and scene.label is not None:
        lines.append("per-class IoU % (every point):")
        table = format_metrics_table(
            {m: scene.confusion(m) for m in scene.models}, list(scene.class_names)
        )
        lines += ["  " + t for t in table.splitlines()]
    if keys:
        lines.append("keys:")
        width = max(len(k) for k, _ in KEY_BINDINGS)
        lines += [f"  {k:<{width}}  {v}" for k, v in KEY_BINDINGS]
        lines.append("  (mouse: drag to rotate, shift+drag / wheel-drag to pan, wheel to zoom)")
    return "\n".join(lines)


def _ansi_ok() -> bool:
    import sys

    return sys.stdout.isatty() and os.environ.get("NO_COLOR") is None


def screenshot(scene: Scene, path: str | os.PathLike, **kw) -> Shot:
    """Render `scene` in a hidden Open3D window (a private Xvfb when there is no display)."""
    viewer = Viewer(scene, **kw)
    with display_for(interactive=False):
        viewer.open(visible=False)
        try:
            return viewer.screenshot(path)
        finally:
            viewer.close()


def show(scene: Scene, **kw) -> None:
    """The interactive window (needs a display)."""
    viewer = Viewer(scene, **kw)
    with display_for(interactive=True):
        viewer.run()
