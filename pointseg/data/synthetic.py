"""Synthetic datasets: S3DIS rooms in the raw Stanford layout and ModelNet-style meshes.

These are the embedded default data of the demo and of the tests: nothing is downloaded, every
file is a pure function of the seed (same seed → byte-identical files).

S3DIS (`synth_s3dis`)
    ``<out>/Area_<a>/<room>/Annotations/<class>_<i>.txt`` (one ``x y z r g b`` line per point,
    coordinates with 3 decimals in metres, integer colours 0..255, exactly the text format of
    ``Stanford3dDataset_v1.2_Aligned_Version``) and ``<out>/Area_<a>/<room>/<room>.txt``, the
    concatenation of the room's annotation files in natural name order (``beam_1``, ``board_1``,
    …, ``chair_2``, ``chair_10``, …: the order `pointseg.data.s3dis.parse_room` reads them in). Rooms are axis-aligned boxes of the room types of the real dataset
    (``office``, ``conferenceRoom``, ``hallway``, ``lounge``, ``copyRoom``, ``storage``), placed
    side by side in an area-wide coordinate frame (so coordinates are not room-relative, as in the
    real data). Points are sampled **on surfaces** (area-weighted, ``BASE_DENSITY × density``
    points per m²) with a few mm of Gaussian sensor jitter; hidden structural surfaces (the wall
    behind a board, bookcase or column, the floor under a sofa, the ceiling above a beam, the
    wall inside door and window openings) are carved away as a scanner would not see them.

    Every room contains all 13 classes, so every area does. The classes are separable by
    geometry + colour, but not by colour alone: beams and columns have the colour of the ceiling
    and walls (height, thickness and position tell them apart), boards are thin light panels 1–3
    cm in front of the wall, doors and windows sit in wall openings (recessed, with frames),
    tables and chairs differ by height and shape, clutter has random colours.

ModelNet (`synth_modelnet`)
    ``<out>/<class>/{train,test}/<class>_<0001>.off`` triangle meshes (``OFF\\n<nv> <nf> 0``)
    of primitive-composed shapes (table = top + 4 legs, chair = seat + back + legs, lamp =
    base + pole + cone shade, …) with random proportions, scale and rotation about z.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pointseg.data.s3dis import CLASSES
from pointseg.errors import ConfigError, DataError
from pointseg.io import atomic_write

__all__ = [
    "BASE_DENSITY",
    "CLASSES",
    "MODELNET_SYNTH_CLASSES",
    "ROOM_TYPES",
    "SynthObject",
    "SynthRoom",
    "annotation_order",
    "format_points",
    "make_room",
    "room_plan",
    "mesh_to_off",
    "make_mesh",
    "synth_modelnet",
    "synth_s3dis",
    "write_room",
]

_CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}

# Points per m² of surface at density=1: a 5 m × 4 m office has ~110 m² of visible surface, so
# ~33k points; rooms land in 20k–60k points (the real data has ~100× more).
BASE_DENSITY = 300.0
# Standard deviation (m) of the isotropic sensor jitter added to every point.
JITTER = 0.003

# Where in an area each room sits: room i's min corner is at x = area_x + i * _ROOM_PITCH.
_ROOM_PITCH = 13.0

# Room types in the order rooms of an area cycle through them (area a starts at offset 2(a-1)),
# so a small area of 2 rooms already mixes types.
_ROOM_CYCLE = (
    "office",
    "conferenceRoom",
    "hallway",
    "office",
    "lounge",
    "copyRoom",
    "office",
    "storage",
)


@dataclass(frozen=True)
class RoomType:
    """Size ranges (m) and object counts (inclusive ranges) of one room type."""

    length: tuple[float, float]  # along x
    width: tuple[float, float]  # along y
    height: tuple[float, float]
    doors: tuple[int, int]
    windows: tuple[int, int]
    boards: tuple[int, int]
    bookcases: tuple[int, int]
    sofas: tuple[int, int]
    columns: tuple[int, int]
    beams: tuple[int, int]
    desks: tuple[int, int]  # tables against a wall, one chair each
    extra_chairs: tuple[int, int]
    clutter: tuple[int, int]
    center_table: str = "none"  # "conference" | "coffee" | "none"


ROOM_TYPES: dict[str, RoomType] = {
    "office": RoomType(
        (4.0, 6.5), (3.0, 5.0), (2.7, 3.1), doors=(1, 1), windows=(1, 2), boards=(1, 1),
        bookcases=(1, 2), sofas=(1, 1), columns=(1, 2), beams=(1, 2), desks=(1, 3),
        extra_chairs=(0, 2), clutter=(5, 10),
    ),
    "conferenceRoom": RoomType(
        (5.5, 7.5), (4.0, 5.5), (2.8, 3.2), doors=(1, 2), windows=(1, 3), boards=(1, 2),
        bookcases=(1, 1), sofas=(1, 1), columns=(1, 2), beams=(1, 2), desks=(0, 0),
        extra_chairs=(0, 2), clutter=(3, 8), center_table="conference",
    ),
    "hallway": RoomType(
        (6.0, 10.0), (2.0, 2.6), (2.7, 3.0), doors=(2, 4), windows=(1, 1), boards=(1, 1),
        bookcases=(1, 1), sofas=(1, 1), columns=(1, 2), beams=(1, 3), desks=(1, 1),
        extra_chairs=(0, 1), clutter=(2, 6),
    ),
    "lounge": RoomType(
        (4.5, 7.0), (3.5, 6.0), (2.7, 3.1), doors=(1, 2), windows=(1, 3), boards=(1, 1),
        bookcases=(1, 1), sofas=(1, 3), columns=(1, 1), beams=(1, 2), desks=(0, 1),
        extra_chairs=(2, 4), clutter=(4, 10), center_table="coffee",
    ),
    "copyRoom": RoomType(
        (3.5, 5.0), (3.0, 4.0), (2.7, 3.0), doors=(1, 1), windows=(1, 1), boards=(1, 1),
        bookcases=(1, 2), sofas=(1, 1), columns=(1, 1), beams=(1, 1), desks=(1, 2),
        extra_chairs=(0, 1), clutter=(4, 9),
    ),
    "storage": RoomType(
        (3.5, 5.5), (3.0, 4.5), (2.7, 3.0), doors=(1, 1), windows=(1, 1), boards=(1, 1),
        bookcases=(2, 3), sofas=(1, 1), columns=(1, 1), beams=(1, 2), desks=(1, 1),
        extra_chairs=(0, 1), clutter=(8, 14),
    ),
}  # fmt: skip

# Base colours (RGB) of the materials, close to the means measured on the real rooms in
# ../shared/data/s3dis_raw (walls ~(155,155,140), ceilings darker ~(95..125), boards ~(165,170,170),
# doors brown ~(125,88,52), chairs dark ~(55..70)).
_WALL_COLORS = ((160, 158, 145), (172, 170, 158), (150, 150, 146), (182, 177, 162), (142, 138, 122))
_FLOOR_COLORS = ((110, 108, 95), (138, 100, 66), (82, 82, 88), (150, 148, 140), (96, 110, 120))
_WOOD_COLORS = ((150, 108, 68), (120, 85, 55), (175, 140, 100))
_TABLE_COLORS = ((141, 146, 147), (185, 184, 178), *_WOOD_COLORS, (70, 70, 72))
_CHAIR_COLORS = ((55, 55, 60), (62, 72, 110), (130, 52, 50), (95, 95, 100), (40, 40, 42))
_SOFA_COLORS = ((112, 72, 46), (122, 122, 128), (150, 62, 60), (72, 92, 130), (137, 114, 75))
_METAL_COLORS = ((160, 162, 166), (90, 90, 94), (40, 40, 44))
_BOARD_COLORS = ((212, 214, 214), (205, 208, 212), (198, 202, 200))
_WINDOW_GLASS = (165, 182, 200)
_WINDOW_FRAMES = ((215, 215, 210), (82, 82, 88), (160, 162, 165))


@dataclass
class SynthObject:
    """One annotated object: class name, world coordinates (n, 3) float64, colours (n, 3) uint8."""

    cls: str
    xyz: np.ndarray
    rgb: np.ndarray


@dataclass
class SynthRoom:
    """A generated room: name (``office_1``), type, size (L, W, H) and its objects."""

    name: str
    room_type: str
    size: tuple[float, float, float]
    origin: tuple[float, float, float]
    objects: list[SynthObject] = field(default_factory=list)

    def points(self) -> int:
        return int(sum(len(o.xyz) for o in self.objects))


# ---------------------------------------------------------------------------------------------
# Surface sampling and colours
# ---------------------------------------------------------------------------------------------


class _Sampler:
    """Area-weighted uniform sampling of points on planar / cylindrical surfaces.

    Every primitive draws ``Poisson(area × density)`` points, so all surfaces share one density
    (points per m²) no matter how they are cut into parts.
    """

    def __init__(self, rng: np.random.Generator, density: float):
        self.rng = rng
        self.density = density

    def count(self, area: float) -> int:
        return int(self.rng.poisson(max(area, 0.0) * self.density))

    def rect(self, origin, u, v) -> np.ndarray:
        """Points on the parallelogram origin + a·u + b·v, a, b ∈ [0, 1]. Returns (n, 3)."""
        origin, u, v = (np.asarray(a, dtype=np.float64) for a in (origin, u, v))
        n = self.count(float(np.linalg.norm(np.cross(u, v))))
        ab = self.rng.random((n, 2))
        return origin + ab[:, :1] * u + ab[:, 1:] * v

    def box(self, lo, hi, skip: str = "") -> np.ndarray:
        """Points on the faces of the axis-aligned box [lo, hi] except the faces named in `skip`.

        Faces are named ``x0 x1 y0 y1 z0 z1`` (min / max face along each axis), e.g. ``skip="z0"``
        leaves out the bottom face that rests on the floor.
        """
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        d = hi - lo
        parts = []
        for axis, name in enumerate("xyz"):
            a1, a2 = [i for i in range(3) if i != axis]
            u = np.zeros(3)
            v = np.zeros(3)
            u[a1] = d[a1]
            v[a2] = d[a2]
            for side, at in (("0", lo[axis]), ("1", hi[axis])):
                if name + side in skip:
                    continue
                o = lo.copy()
                o[axis] = at
                parts.append(self.rect(o, u, v))
        return np.concatenate(parts) if parts else np.zeros((0, 3))

    def cylinder(self, cx, cy, z0, z1, r0, r1=None, top=False, bottom=False) -> np.ndarray:
        """Lateral surface of a vertical frustum (radius r0 at z0, r1 at z1) plus optional caps."""
        r1 = r0 if r1 is None else r1
        h = z1 - z0
        slant = math.hypot(h, r1 - r0)
        n = self.count(math.pi * (r0 + r1) * slant)
        # Area-uniform along the slant: the circumference grows linearly with t, so invert the CDF.
        u = self.rng.random(n)
        if abs(r1 - r0) > 1e-9:
            t = (np.sqrt(r0**2 + u * (r1**2 - r0**2)) - r0) / (r1 - r0)
        else:
            t = u
        phi = self.rng.random(n) * 2 * math.pi
        r = r0 + t * (r1 - r0)
        parts = [np.stack([cx + r * np.cos(phi), cy + r * np.sin(phi), z0 + t * h], axis=1)]
        for flag, z, rad in ((top, z1, r1), (bottom, z0, r0)):
            if flag and rad > 0:
                parts.append(self.disc(cx, cy, z, rad))
        return np.concatenate(parts)

    def disc(self, cx, cy, z, r) -> np.ndarray:
        n = self.count(math.pi * r * r)
        rad = r * np.sqrt(self.rng.random(n))
        phi = self.rng.random(n) * 2 * math.pi
        return np.stack([cx + rad * np.cos(phi), cy + rad * np.sin(phi), np.full(n, z)], axis=1)

    def ellipsoid(self, c, radii) -> np.ndarray:
        """Approximately area-uniform points on an ellipsoid (uniform on a sphere, then scaled)."""
        a, b, cc = radii
        p = 1.6075  # Knud Thomsen's surface-area approximation
        area = 4 * math.pi * (((a * b) ** p + (a * cc) ** p + (b * cc) ** p) / 3) ** (1 / p)
        n = self.count(area)
        g = self.rng.normal(size=(n, 3))
        g /= np.linalg.norm(g, axis=1, keepdims=True) + 1e-12
        return np.asarray(c, dtype=np.float64) + g * np.asarray(radii, dtype=np.float64)


def _object_color(rng: np.random.Generator, palette, spread: float = 0.06) -> np.ndarray:
    """One object's colour: a palette entry scaled by a per-object shade and tinted slightly."""
    base = np.asarray(palette[rng.integers(len(palette))], dtype=np.float64)
    return base * rng.uniform(1 - spread, 1 + spread) + rng.normal(0, 4, 3)


def _paint(rng: np.random.Generator, n: int, color, sigma: float) -> np.ndarray:
    """(n, 3) uint8 colours: `color` + per-point Gaussian noise of std `sigma`, clipped."""
    c = np.asarray(color, dtype=np.float64) + rng.normal(0, sigma, (n, 3))
    # A common luminance term too: real colour noise is mostly brightness (lighting, texture).
    c += rng.normal(0, sigma * 0.6, (n, 1))
    return np.clip(np.rint(c), 0, 255).astype(np.uint8)


def _rand_hue_color(rng: np.random.Generator) -> np.ndarray:
    """A random saturated-ish colour (books, clutter): HSV with random hue."""
    h = rng.random()
    s = rng.uniform(0.2, 0.85)
    v = rng.uniform(0.25, 0.9)
    k = (np.array([5, 3, 1]) + h * 6) % 6
    rgb = v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)
    return rgb * 255


def _rot_z(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------------------------------
# Room builder
# ---------------------------------------------------------------------------------------------


@dataclass
class _Wall:
    """A wall in room coordinates: p = origin + s·u + d·n + z·e_z, s ∈ [0, length]."""

    origin: np.ndarray
    u: np.ndarray  # unit vector along the wall
    n: np.ndarray  # unit inward normal
    length: float

    def to_world(self, sdz: np.ndarray) -> np.ndarray:
        """(n, 3) wall-local (s, d, z) → (n, 3) room coordinates."""
        m = np.stack([self.u, self.n, np.array([0.0, 0.0, 1.0])], axis=1)  # columns u, n, ez
        return self.origin + sdz @ m.T

    def box_world(self, lo, hi) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned room-space box of the wall-local box [lo, hi] (walls are axis-aligned)."""
        corners = self.to_world(np.array([lo, hi], dtype=np.float64))
        return corners.min(axis=0), corners.max(axis=0)


@dataclass
class _Carve:
    """Points of the classes `victims` inside [lo, hi] are removed (hidden by a solid object)."""

    lo: np.ndarray
    hi: np.ndarray
    victims: tuple[str, ...] = ("ceiling", "floor", "wall")


class _RoomBuilder:
    def __init__(self, rng: np.random.Generator, rtype: RoomType, density: float):
        self.rng = rng
        self.t = rtype
        self.s = _Sampler(rng, BASE_DENSITY * density)
        self.L = float(rng.uniform(*rtype.length))
        self.W = float(rng.uniform(*rtype.width))
        self.H = float(rng.uniform(*rtype.height))
        L, W = self.L, self.W
        self.walls = [
            _Wall(np.array([0.0, 0.0, 0.0]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), L),
            _Wall(np.array([L, 0.0, 0.0]), np.array([0, 1.0, 0]), np.array([-1.0, 0, 0]), W),
            _Wall(np.array([L, W, 0.0]), np.array([-1.0, 0, 0]), np.array([0, -1.0, 0]), L),
            _Wall(np.array([0.0, W, 0.0]), np.array([0, -1.0, 0]), np.array([1.0, 0, 0]), W),
        ]
        # Occupied wall intervals (s0, s1, z0, z1) per wall and floor footprints (x0, y0, x1, y1).
        self.wall_used: list[list[tuple[float, float, float, float]]] = [[] for _ in self.walls]
        self.floor_used: list[tuple[float, float, float, float]] = []
        self.objects: list[SynthObject] = []
        self.carves: list[_Carve] = []
        self.tables: list[
            tuple[np.ndarray, float, float, float, float]
        ] = []  # centre, yaw, lx, ly, h
        self.windows: list[tuple[int, float, float, float]] = []  # wall, s0, s1, sill
        self.wall_color = _object_color(rng, _WALL_COLORS, 0.04)
        self.ceiling_color = self.wall_color * rng.uniform(0.62, 0.8)
        self.floor_color = _object_color(rng, _FLOOR_COLORS)

    # -- bookkeeping ---------------------------------------------------------------------------

    def add(self, cls: str, parts: list[tuple[np.ndarray, np.ndarray | Sequence[float], float]]):
        """Add one object made of parts (points (n,3), colour (3,), noise std)."""
        xyz = [p for p, _, _ in parts]
        rgb = [_paint(self.rng, len(p), c, sig) for p, c, sig in parts]
        self.objects.append(SynthObject(cls, np.concatenate(xyz), np.concatenate(rgb)))

    def _overlaps_floor(self, box) -> bool:
        x0, y0, x1, y1 = box
        if x0 < -1e-6 or y0 < -1e-6 or x1 > self.L + 1e-6 or y1 > self.W + 1e-6:
            return True
        return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in self.floor_used)

    def _wall_slot(
        self,
        width: float,
        z0: float,
        z1: float,
        depth: float,
        *,
        margin: float = 0.1,
        corner_ok: bool = False,
        walls: Sequence[int] | None = None,
        tries: int = 60,
        shrink: float = 0.6,
    ):
        """Find (wall, s0, width) where [s0, s0+width] × [z0, z1] is free on the wall and the
        floor strip in front of it (depth m deep, when depth > 0) is free. Shrinks `width`
        after failing; returns None if even the shrunk object does not fit."""
        rng = self.rng
        cand = list(range(4)) if walls is None else list(walls)
        for attempt in range(2):
            for _ in range(tries):
                w = cand[int(rng.integers(len(cand)))]
                wall = self.walls[w]
                lo = 0.0 if corner_ok and rng.random() < 0.3 else margin
                hi = wall.length - width - margin
                if hi < lo:
                    continue
                s0 = float(rng.uniform(lo, hi)) if not (corner_ok and lo == 0.0) else 0.0
                s1 = s0 + width
                if any(
                    s0 < b[1] + 0.05 and b[0] - 0.05 < s1 and z0 < b[3] and b[2] < z1
                    for b in self.wall_used[w]
                ):
                    continue
                if depth > 0:
                    bl, bh = wall.box_world([s0, 0.0, 0.0], [s1, depth, 0.0])
                    if self._overlaps_floor((bl[0], bl[1], bh[0], bh[1])):
                        continue
                return w, s0, width
            if attempt == 0:
                width *= shrink
        return None

    def _reserve_wall(self, w, s0, s1, z0, z1, depth):
        self.wall_used[w].append((s0, s1, z0, z1))
        if depth > 0:
            bl, bh = self.walls[w].box_world([s0, 0.0, 0.0], [s1, depth, 0.0])
            self.floor_used.append((bl[0], bl[1], bh[0], bh[1]))

    def _floor_slot(self, hx: float, hy: float, margin: float = 0.15, tries: int = 80):
        """Centre (x, y) of a free axis-aligned footprint of half sizes (hx, hy), or None."""
        for _ in range(tries):
            if self.L - 2 * (hx + margin) < 0 or self.W - 2 * (hy + margin) < 0:
                return None
            x = float(self.rng.uniform(hx + margin, self.L - hx - margin))
            y = float(self.rng.uniform(hy + margin, self.W - hy - margin))
            if not self._overlaps_floor((x - hx, y - hy, x + hx, y + hy)):
                return x, y
        return None

    def _count(self, rng_range: tuple[int, int]) -> int:
        return int(self.rng.integers(rng_range[0], rng_range[1] + 1))

    # -- structure -----------------------------------------------------------------------------

    def structure(self):
        s, L, W, H = self.s, self.L, self.W, self.H
        self.add("floor", [(s.rect([0, 0, 0], [L, 0, 0], [0, W, 0]), self.floor_color, 12.0)])
        self.add("ceiling", [(s.rect([0, 0, H], [L, 0, 0], [0, W, 0]), self.ceiling_color, 7.0)])
        # Walls are annotated one file per wall, as in the real data.
        for wall in self.walls:
            pts = s.rect(wall.origin, wall.u * wall.length, [0, 0, H])
            shade = self.wall_color * self.rng.uniform(0.94, 1.04)
            self.add("wall", [(pts, shade, 7.0)])

    def doors(self):
        rng, s = self.rng, self.s
        n = self._count(self.t.doors)
        for i in range(n):
            double = rng.random() < (0.25 if self.t.center_table == "conference" else 0.1)
            width = float(rng.uniform(1.5, 1.8) if double else rng.uniform(0.85, 1.0))
            h = float(rng.uniform(2.0, 2.2))
            fw = float(rng.uniform(0.04, 0.08))
            slot = self._wall_slot(width + 2 * fw, 0.0, h + fw, 1.0, margin=0.15)
            if slot is None:
                if i == 0:  # every room needs a door: accept a narrow one anywhere on the walls
                    slot = (int(rng.integers(4)), 0.15, width + 2 * fw)
                else:
                    continue
            w, s0f, full = slot
            width = full - 2 * fw
            s0, s1 = s0f + fw, s0f + fw + width
            self._reserve_wall(w, s0f, s0f + full, 0.0, h + fw, 1.0)
            wall = self.walls[w]
            rec = float(rng.uniform(0.03, 0.08))  # the leaf sits inside the wall thickness
            fr = 0.015  # frame front protrudes into the room
            leaf = s.rect([s0, -rec, 0], [width, 0, 0], [0, 0, h])
            frame = np.concatenate(
                [
                    s.rect([s0 - fw, fr, 0], [fw, 0, 0], [0, 0, h + fw]),
                    s.rect([s1, fr, 0], [fw, 0, 0], [0, 0, h + fw]),
                    s.rect([s0, fr, h], [width, 0, 0], [0, 0, fw]),
                    # reveals: the frame's inner faces between the leaf and the frame front
                    s.rect([s0, -rec, 0], [0, rec + fr, 0], [0, 0, h]),
                    s.rect([s1, -rec, 0], [0, rec + fr, 0], [0, 0, h]),
                    s.rect([s0, -rec, h], [width, 0, 0], [0, rec + fr, 0]),
                ]
            )
            hs = s1 - 0.1 if rng.random() < 0.5 else s0 + 0.02
            handle = s.box([hs, -rec, 0.98], [hs + 0.08, -rec + 0.06, 1.02])
            kind = rng.random()
            if kind < 0.5:
                leaf_c = _object_color(rng, _WOOD_COLORS)
            elif kind < 0.8:
                leaf_c = _object_color(rng, ((120, 122, 126), (95, 100, 108)))
            else:  # painted like the wall: only the geometry (recess, frame) tells it apart
                leaf_c = self.wall_color * rng.uniform(0.85, 0.95)
            frame_c = (
                leaf_c * rng.uniform(0.8, 1.0)
                if rng.random() < 0.5
                else _object_color(rng, _METAL_COLORS)
            )
            self.add(
                "door",
                [
                    (wall.to_world(leaf), leaf_c, 10.0),
                    (wall.to_world(frame), frame_c, 8.0),
                    (wall.to_world(handle), (175, 175, 180), 8.0),
                ],
            )
            self.carves.append(
                _Carve(*wall.box_world([s0 - fw, -0.3, -0.05], [s1 + fw, 0.3, h + fw]), ("wall",))
            )

    def windows_(self):
        rng, s = self.rng, self.s
        n = self._count(self.t.windows)
        for i in range(n):
            width = float(rng.uniform(0.8, 2.4))
            sill = float(rng.uniform(0.75, 1.0))
            top = float(min(2.3, self.H - 0.5) - rng.uniform(0.0, 0.15))
            fw = float(rng.uniform(0.04, 0.07))
            slot = self._wall_slot(width + 2 * fw, sill - fw - 0.05, top + fw, 0.0, margin=0.2)
            if slot is None:
                if i == 0:
                    slot = (int(rng.integers(4)), 0.2, 0.8 + 2 * fw)
                else:
                    continue
            w, s0f, full = slot
            width = full - 2 * fw
            s0, s1 = s0f + fw, s0f + full - fw
            h = top - sill
            self._reserve_wall(w, s0f, s0f + full, sill - fw - 0.05, top + fw, 0.0)
            self.windows.append((w, s0f, s0f + full, sill))
            wall = self.walls[w]
            rec = float(rng.uniform(0.08, 0.2))  # glass plane behind the wall plane
            glass = s.rect([s0, -rec, sill], [width, 0, 0], [0, 0, h])
            # Scanners see through glass: most glass returns are missing.
            glass = glass[rng.random(len(glass)) < rng.uniform(0.3, 0.7)]
            fr = 0.01
            parts = [
                s.rect([s0 - fw, fr, sill - fw], [fw, 0, 0], [0, 0, h + 2 * fw]),
                s.rect([s1, fr, sill - fw], [fw, 0, 0], [0, 0, h + 2 * fw]),
                s.rect([s0, fr, top], [width, 0, 0], [0, 0, fw]),
                s.rect([s0, -rec, sill], [0, rec + fr, 0], [0, 0, h]),  # side reveals
                s.rect([s1, -rec, sill], [0, rec + fr, 0], [0, 0, h]),
                s.rect([s0, -rec, top], [width, 0, 0], [0, rec + fr, 0]),
                # the sill board protrudes into the room
                s.box(
                    [s0 - fw, -rec, sill - fw],
                    [s1 + fw, float(rng.uniform(0.04, 0.1)), sill],
                    skip="y0",
                ),
            ]
            # Vertical mullions every ~0.6-0.9 m.
            n_mull = int(width // rng.uniform(0.6, 0.9))
            for k in range(1, n_mull + 1):
                sm = s0 + k * width / (n_mull + 1)
                parts.append(
                    s.box([sm - 0.025, -rec, sill], [sm + 0.025, -rec + 0.04, top], skip="y0z0z1")
                )
            frame = np.concatenate(parts)
            frame_c = _object_color(rng, _WINDOW_FRAMES)
            glass_c = np.asarray(_WINDOW_GLASS) * rng.uniform(0.8, 1.15) + rng.normal(0, 10, 3)
            self.add(
                "window",
                [(wall.to_world(glass), glass_c, 28.0), (wall.to_world(frame), frame_c, 9.0)],
            )
            self.carves.append(
                _Carve(
                    *wall.box_world([s0 - fw, -0.3, sill - fw], [s1 + fw, 0.3, top + fw]),
                    ("wall",),
                )
            )

    def columns(self):
        rng, s, H = self.rng, self.s, self.H
        for _ in range(self._count(self.t.columns)):
            width = float(rng.uniform(0.3, 0.6))
            depth = float(rng.uniform(0.2, 0.5))
            slot = self._wall_slot(width, 0.0, H, depth, margin=0.3, corner_ok=True)
            if slot is None:
                slot = self._wall_slot(0.3, 0.0, H, 0.2, margin=0.0, tries=200)
                if slot is None:
                    continue
            w, s0, width = slot
            s1 = s0 + width
            self._reserve_wall(w, s0, s1, 0.0, H, depth)
            wall = self.walls[w]
            parts = [s.rect([s0, depth, 0], [width, 0, 0], [0, 0, H])]  # front face
            if s0 > 1e-6:  # in a corner the side face would coincide with the adjacent wall
                parts.append(s.rect([s0, 0, 0], [0, depth, 0], [0, 0, H]))
            parts.append(s.rect([s1, 0, 0], [0, depth, 0], [0, 0, H]))
            color = self.wall_color * rng.uniform(0.93, 1.06)
            self.add("column", [(wall.to_world(np.concatenate(parts)), color, 7.0)])
            lo, hi = wall.box_world([s0 - 0.01, -0.05, -0.05], [s1, depth, H + 0.05])
            self.carves.append(_Carve(lo, hi, ("ceiling", "floor", "wall", "beam")))

    def beams(self):
        rng, s, L, W, H = self.rng, self.s, self.L, self.W, self.H
        for _ in range(self._count(self.t.beams)):
            bw = float(rng.uniform(0.2, 0.45))
            drop = float(rng.uniform(0.2, 0.45))
            z0 = H - drop
            along_y = rng.random() < 0.5 if L > W * 1.3 else rng.random() < 0.25
            # Beams span the room across; along y they sit at some x, and vice versa.
            if along_y:
                c = float(rng.uniform(0.6, L - 0.6))
                lo, hi = np.array([c - bw / 2, 0.0, z0]), np.array([c + bw / 2, W, H])
            else:
                c = float(rng.uniform(0.4, W - 0.4))
                lo, hi = np.array([0.0, c - bw / 2, z0]), np.array([L, c + bw / 2, H])
            pts = s.box(lo, hi, skip="x0x1z1" if not along_y else "y0y1z1")
            color = self.ceiling_color * rng.uniform(0.95, 1.2)
            self.add("beam", [(pts, color, 7.0)])
            pad = np.array([0.01, 0.01, 0.01])
            ext = np.array([0.05, 0.0, 0.0]) if not along_y else np.array([0.0, 0.05, 0.0])
            self.carves.append(_Carve(lo - pad - ext, hi + pad + ext, ("ceiling", "wall")))

    def boards(self):
        rng, s = self.rng, self.s
        n = self._count(self.t.boards)
        for i in range(n):
            width = float(rng.uniform(1.2, 3.0))
            h = float(rng.uniform(0.9, 1.25))
            bot = float(rng.uniform(0.9, 1.0))
            slot = self._wall_slot(width, bot, bot + h, 0.0, margin=0.2, shrink=0.5)
            if slot is None:
                if i > 0:
                    continue
                slot = self._wall_slot(0.8, bot, bot + h, 0.0, margin=0.05, tries=300)
                if slot is None:  # walls full: hang it anyway, the wall behind is carved
                    slot = (int(rng.integers(4)), 0.3, 0.8)
            w, s0, width = slot
            s1 = s0 + width
            self._reserve_wall(w, s0, s1, bot, bot + h, 0.0)
            wall = self.walls[w]
            th = float(rng.uniform(0.01, 0.03))
            face = s.rect([s0, th, bot], [width, 0, 0], [0, 0, h])
            fw = 0.02
            frame = np.concatenate(
                [
                    s.box([s0 - fw, 0, bot - fw], [s0, th + 0.01, bot + h + fw], skip="y0"),
                    s.box([s1, 0, bot - fw], [s1 + fw, th + 0.01, bot + h + fw], skip="y0"),
                    s.box([s0, 0, bot + h], [s1, th + 0.01, bot + h + fw], skip="y0"),
                    s.box([s0, 0, bot - fw], [s1, th + 0.06, bot], skip="y0"),  # marker tray
                ]
            )
            kind = rng.random()
            if kind < 0.75:  # whiteboard, a few darker strokes
                face_c = _object_color(rng, _BOARD_COLORS, 0.04)
            elif kind < 0.9:  # cork / bulletin board
                face_c = _object_color(rng, ((172, 132, 92),), 0.06)
            else:  # chalkboard
                face_c = _object_color(rng, ((48, 70, 58), (40, 40, 44)), 0.06)
            face_rgb = _paint(rng, len(face), face_c, 6.0)
            ink = rng.random(len(face)) < 0.06
            face_rgb[ink] = _paint(rng, int(ink.sum()), _rand_hue_color(rng) * 0.6, 10.0)
            frame_rgb = _paint(rng, len(frame), _object_color(rng, _METAL_COLORS[:1]), 8.0)
            self.objects.append(
                SynthObject(
                    "board",
                    np.concatenate([wall.to_world(face), wall.to_world(frame)]),
                    np.concatenate([face_rgb, frame_rgb]),
                )
            )
            self.carves.append(
                _Carve(
                    *wall.box_world([s0 - fw, -0.05, bot - fw], [s1 + fw, th, bot + h + fw]),
                    ("wall",),
                )
            )

    def bookcases(self):
        rng, s = self.rng, self.s
        n = self._count(self.t.bookcases)
        for i in range(n):
            width = float(rng.uniform(0.8, 2.0))
            dep = float(rng.uniform(0.3, 0.4))
            h = float(rng.uniform(1.6, min(2.2, self.H - 0.4)))
            slot = self._wall_slot(width, 0.0, h, dep + 0.5, margin=0.05, corner_ok=True)
            if slot is None:
                if i > 0:
                    continue
                slot = self._wall_slot(0.6, 0.0, h, dep, margin=0.0, tries=300)
                if slot is None:
                    continue
            w, s0, width = slot
            s1 = s0 + width
            self._reserve_wall(w, s0, s1, 0.0, h, dep + 0.5)
            wall = self.walls[w]
            t = 0.02
            frame = [
                s.box([s0, 0, 0], [s0 + t, dep, h], skip="z0y0"),
                s.box([s1 - t, 0, 0], [s1, dep, h], skip="z0y0"),
                s.box([s0, 0, h - t], [s1, dep, h], skip="y0x0x1"),
                s.rect([s0, 0.01, 0], [width, 0, 0], [0, 0, h]),  # back panel
            ]
            n_sh = int(rng.integers(4, 7))
            levels = np.linspace(0.08, h - t, n_sh + 1)[:-1]
            books_xyz, books_rgb = [], []
            for z in levels:
                frame.append(s.box([s0, 0, z - t], [s1, dep, z], skip="y0x0x1"))
                space = float(levels[1] - levels[0]) - t - 0.02
                # Books: consecutive widths along the shelf, some gaps; sampled on the front faces.
                widths = rng.uniform(0.02, 0.07, size=int(width / 0.02) + 2)
                edges = s0 + np.concatenate([[0.0], np.cumsum(widths)])
                nb = int(np.searchsorted(edges, s1)) - 1
                present = rng.random(nb) < rng.uniform(0.35, 0.95)
                bh = rng.uniform(0.55, 0.95, nb) * space
                bd = rng.uniform(0.15, dep - 0.03, nb)
                base = np.stack([_rand_hue_color(rng) for _ in range(nb)])
                pts = s.rect([s0, 0, z], [width, 0, 0], [0, 0, space])
                k = np.clip(np.searchsorted(edges, pts[:, 0], side="right") - 1, 0, nb - 1)
                keep = present[k] & (pts[:, 2] < z + bh[k])
                pts, k = pts[keep], k[keep]
                pts[:, 1] = bd[k]
                col = base[k] + rng.normal(0, 12, (len(k), 3))
                books_xyz.append(pts)
                books_rgb.append(np.clip(np.rint(col), 0, 255).astype(np.uint8))
            frame_pts = np.concatenate(frame)
            frame_rgb = _paint(
                rng, len(frame_pts), _object_color(rng, _WOOD_COLORS + ((185, 184, 178),)), 8.0
            )
            self.objects.append(
                SynthObject(
                    "bookcase",
                    np.concatenate(
                        [wall.to_world(frame_pts), *[wall.to_world(b) for b in books_xyz]]
                    ),
                    np.concatenate([frame_rgb, *books_rgb]),
                )
            )
            self.carves.append(
                _Carve(*wall.box_world([s0 - 0.01, -0.05, -0.05], [s1 + 0.01, dep, h]))
            )

    def sofas(self):
        rng, s = self.rng, self.s
        n = self._count(self.t.sofas)
        for i in range(n):
            length = float(rng.uniform(1.4, 2.2))
            dep = float(rng.uniform(0.75, 0.95))
            slot = self._wall_slot(length, 0.0, 0.88, dep + 0.4, margin=0.05, corner_ok=True)
            if slot is None:
                if i > 0:
                    continue
                slot = self._wall_slot(1.0, 0.0, 0.88, dep, margin=0.0, tries=300)
                if slot is None:
                    continue
            w, s0, length = slot
            s1 = s0 + length
            self._reserve_wall(w, s0, s1, 0.0, 0.88, dep + 0.4)
            wall = self.walls[w]
            seat = float(rng.uniform(0.38, 0.46))
            back_h = float(rng.uniform(0.72, 0.86))
            bt = float(rng.uniform(0.15, 0.25))
            arm = float(rng.uniform(0.12, 0.2)) if length > 1.1 else 0.08
            arm_h = float(rng.uniform(0.55, 0.65))
            pts = np.concatenate(
                [
                    s.box([s0 + arm, bt, 0.0], [s1 - arm, dep, seat], skip="z0x0x1y0"),
                    s.box([s0, 0.0, 0.0], [s1, bt, back_h], skip="z0y0"),
                    s.box([s0, bt, 0.0], [s0 + arm, dep, arm_h], skip="z0y0"),
                    s.box([s1 - arm, bt, 0.0], [s1, dep, arm_h], skip="z0y0"),
                ]
            )
            self.add("sofa", [(wall.to_world(pts), _object_color(rng, _SOFA_COLORS), 10.0)])
            self.carves.append(_Carve(*wall.box_world([s0, -0.05, -0.05], [s1, dep, back_h])))

    # -- tables and chairs ---------------------------------------------------------------------

    def _table_points(self, lx, ly, h, style):
        """Table in its local frame: centre of the top at (0, 0), top surface at z = h."""
        s, rng = self.s, self.rng
        tt = float(rng.uniform(0.025, 0.05))
        top = s.box([-lx / 2, -ly / 2, h - tt], [lx / 2, ly / 2, h])
        legs = []
        if style == "legs":
            lw = float(rng.uniform(0.04, 0.07))
            ins = float(rng.uniform(0.03, 0.1))
            for sx in (-1, 1):
                for sy in (-1, 1):
                    cx = sx * (lx / 2 - ins - lw / 2)
                    cy = sy * (ly / 2 - ins - lw / 2)
                    legs.append(
                        s.box(
                            [cx - lw / 2, cy - lw / 2, 0],
                            [cx + lw / 2, cy + lw / 2, h - tt],
                            skip="z0z1",
                        )
                    )
        elif style == "panels":
            for sx in (-1, 1):
                x = sx * (lx / 2 - 0.05)
                legs.append(
                    s.box(
                        [x - 0.015, -ly / 2 + 0.05, 0],
                        [x + 0.015, ly / 2 - 0.05, h - tt],
                        skip="z0z1",
                    )
                )
        else:  # pedestal
            legs.append(s.cylinder(0.0, 0.0, 0.0, h - tt, 0.05))
            legs.append(s.cylinder(0.0, 0.0, 0.0, 0.03, min(lx, ly) * 0.35, top=True))
        return top, np.concatenate(legs)

    def _place_table(self, lx, ly, h, center, yaw, style=None):
        rng = self.rng
        style = style or ("legs", "panels", "pedestal")[int(rng.choice(3, p=[0.6, 0.25, 0.15]))]
        top, legs = self._table_points(lx, ly, h, style)
        r = _rot_z(yaw)
        c = np.array([center[0], center[1], 0.0])
        top_c = _object_color(rng, _TABLE_COLORS)
        leg_c = (
            top_c * rng.uniform(0.8, 1.0)
            if rng.random() < 0.5
            else _object_color(rng, _METAL_COLORS)
        )
        self.add("table", [(top @ r.T + c, top_c, 9.0), (legs @ r.T + c, leg_c, 8.0)])
        self.tables.append((c, yaw, lx, ly, h))

    def _chair(self, pos, yaw):
        """A chair whose front faces +y in its frame, turned by `yaw` and placed at `pos`."""
        rng, s = self.rng, self.s
        w = float(rng.uniform(0.42, 0.52))
        d = float(rng.uniform(0.42, 0.5))
        sh = float(rng.uniform(0.42, 0.5))
        bh = float(rng.uniform(0.35, 0.55))
        office = rng.random() < 0.55
        seat = s.box([-w / 2, -d / 2, sh - 0.06], [w / 2, d / 2, sh])
        back = s.box([-w / 2, -d / 2 - 0.05, sh], [w / 2, -d / 2, sh + bh])
        legs = []
        if office:
            legs.append(s.cylinder(0.0, 0.0, 0.09, sh - 0.06, 0.025))
            a0 = rng.uniform(0, 2 * math.pi)
            for k in range(5):
                arm = s.box([0.0, -0.02, 0.05], [0.3, 0.02, 0.09], skip="x0")
                caster = s.box([0.25, -0.02, 0.0], [0.3, 0.02, 0.05], skip="z0z1")
                legs.append(np.concatenate([arm, caster]) @ _rot_z(a0 + k * 2 * math.pi / 5).T)
            if rng.random() < 0.6:  # armrests
                for sx in (-1, 1):
                    x = sx * (w / 2 + 0.03)
                    legs.append(
                        s.box(
                            [x - 0.03, -d / 2 + 0.05, sh + 0.17],
                            [x + 0.03, d / 2 - 0.05, sh + 0.21],
                        )
                    )
        else:
            lw = 0.03
            for sx in (-1, 1):
                for sy in (-1, 1):
                    cx, cy = sx * (w / 2 - lw), sy * (d / 2 - lw)
                    top_z = sh + bh if sy < 0 else sh - 0.06  # rear legs carry the back
                    legs.append(
                        s.box(
                            [cx - lw / 2, cy - lw / 2, 0.0],
                            [cx + lw / 2, cy + lw / 2, top_z],
                            skip="z0z1",
                        )
                    )
        r = _rot_z(yaw)
        c = np.array([pos[0], pos[1], 0.0])
        fabric = _object_color(rng, _CHAIR_COLORS)
        self.add(
            "chair",
            [
                (seat @ r.T + c, fabric, 9.0),
                (back @ r.T + c, fabric * rng.uniform(0.9, 1.1), 9.0),
                (np.concatenate(legs) @ r.T + c, _object_color(rng, _METAL_COLORS), 8.0),
            ],
        )

    def _inside(self, x, y, m=0.3) -> bool:
        return m <= x <= self.L - m and m <= y <= self.W - m

    def furniture(self):
        rng = self.rng
        kind = self.t.center_table
        # Central table first (largest footprint), chairs around it.
        if kind == "conference":
            lx = float(min(rng.uniform(2.4, 4.5), self.L - 2.4))
            ly = float(min(rng.uniform(1.0, 1.4), self.W - 2.4))
            lx, ly = max(lx, 1.2), max(ly, 0.8)
            slot = self._floor_slot(lx / 2 + 0.7, ly / 2 + 0.7, margin=0.05)
            if slot is not None:
                h = float(rng.uniform(0.72, 0.78))
                self._place_table(lx, ly, h, slot, float(rng.normal(0, 0.03)))
                self.floor_used.append(
                    (
                        slot[0] - lx / 2 - 0.7,
                        slot[1] - ly / 2 - 0.7,
                        slot[0] + lx / 2 + 0.7,
                        slot[1] + ly / 2 + 0.7,
                    )
                )
                n_side = max(1, int(lx / rng.uniform(0.65, 0.85)))
                for side in (-1, 1):
                    for k in range(n_side):
                        if rng.random() < 0.15:
                            continue  # an empty seat
                        x = slot[0] - lx / 2 + (k + 0.5) * lx / n_side + rng.normal(0, 0.05)
                        y = slot[1] + side * (ly / 2 + rng.uniform(0.15, 0.45))
                        yaw = (0.0 if side < 0 else math.pi) + rng.normal(0, 0.25)
                        if self._inside(x, y):
                            self._chair((x, y), yaw)
        elif kind == "coffee":
            for _ in range(int(rng.integers(1, 3))):
                lx, ly = float(rng.uniform(0.8, 1.3)), float(rng.uniform(0.5, 0.8))
                slot = self._floor_slot(lx / 2 + 0.3, ly / 2 + 0.3)
                if slot is None:
                    continue
                self.floor_used.append(
                    (
                        slot[0] - lx / 2 - 0.3,
                        slot[1] - ly / 2 - 0.3,
                        slot[0] + lx / 2 + 0.3,
                        slot[1] + ly / 2 + 0.3,
                    )
                )
                yaw = float(rng.normal(0, 0.05))
                self._place_table(lx, ly, float(rng.uniform(0.4, 0.5)), slot, yaw)
        # Desks against walls, one chair each.
        n_desks = self._count(self.t.desks)
        for _ in range(n_desks):
            lx, ly = float(rng.uniform(1.0, 1.6)), float(rng.uniform(0.6, 0.8))
            slot = self._wall_slot(lx, 0.0, 0.8, ly + 0.8, margin=0.05, corner_ok=True)
            if slot is None:
                continue
            w, s0, lx = slot
            self._reserve_wall(w, s0, s0 + lx, 0.0, 0.8, ly + 0.8)
            wall = self.walls[w]
            centre = wall.to_world(np.array([[s0 + lx / 2, ly / 2 + 0.02, 0.0]]))[0]
            yaw = math.atan2(wall.u[1], wall.u[0])
            self._place_table(lx, ly, float(rng.uniform(0.72, 0.78)), centre[:2], yaw)
            cpos = wall.to_world(
                np.array([[s0 + lx / 2 + rng.normal(0, 0.15), ly + rng.uniform(0.05, 0.35), 0.0]])
            )[0]
            # The chair faces the wall: its front (+y local) points along -n.
            yaw_c = math.atan2(-wall.n[1], -wall.n[0]) - math.pi / 2 + rng.normal(0, 0.3)
            self._chair(cpos[:2], yaw_c)
        if not any(o.cls == "table" for o in self.objects):
            # Every room has a table: a small free-standing one (side table), wherever it fits.
            lx, ly = 0.7, 0.6
            slot = self._floor_slot(lx / 2 + 0.1, ly / 2 + 0.1, margin=0.05, tries=400)
            if slot is None:
                slot = (self.L / 2, self.W / 2)
            self.floor_used.append(
                (slot[0] - lx / 2, slot[1] - ly / 2, slot[0] + lx / 2, slot[1] + ly / 2)
            )
            self._place_table(lx, ly, float(rng.uniform(0.6, 0.76)), slot, 0.0, style="legs")
        n_extra = self._count(self.t.extra_chairs)
        if not any(o.cls == "chair" for o in self.objects):
            n_extra = max(n_extra, 1)
        placed = 0
        for _ in range(n_extra * 20):
            if placed >= n_extra:
                break
            slot = self._floor_slot(0.35, 0.35, margin=0.05, tries=1)
            if slot is None:
                continue
            self.floor_used.append((slot[0] - 0.35, slot[1] - 0.35, slot[0] + 0.35, slot[1] + 0.35))
            self._chair(slot, float(rng.uniform(0, 2 * math.pi)))
            placed += 1
        if not any(o.cls == "chair" for o in self.objects):
            self._chair((self.L / 2 + 0.6, self.W / 2), 0.0)

    # -- clutter -------------------------------------------------------------------------------

    def clutter(self):
        rng, s = self.rng, self.s
        n = self._count(self.t.clutter)
        made = 0
        # A radiator under some windows (clutter in S3DIS), white like the frame.
        for w, s0, s1, sill in self.windows:
            if rng.random() < 0.4 and sill > 0.75:
                wall = self.walls[w]
                pts = s.box([s0 + 0.1, 0.03, 0.12], [s1 - 0.1, 0.12, sill - 0.15], skip="y0")
                self.add("clutter", [(wall.to_world(pts), (205, 205, 200), 8.0)])
                self.carves.append(
                    _Carve(
                        *wall.box_world([s0 + 0.1, -0.05, 0.12], [s1 - 0.1, 0.12, sill - 0.15]),
                        ("wall",),
                    )
                )
                made += 1
        kinds = ["on_table", "floor_box", "bin", "plant", "picture", "on_table", "floor_box"]
        if self.t is ROOM_TYPES["copyRoom"]:
            kinds += ["copier", "copier"]
        tries = 0
        while made < max(n, 1) and tries < 10 * max(n, 1):
            tries += 1
            kind = kinds[int(rng.integers(len(kinds)))]
            col = _rand_hue_color(rng)
            if kind == "on_table" and self.tables:
                c, yaw, lx, ly, h = self.tables[int(rng.integers(len(self.tables)))]
                sx, sy = float(rng.uniform(0.1, 0.35)), float(rng.uniform(0.1, 0.3))
                sz = float(rng.choice([0.02, rng.uniform(0.05, 0.4)]))
                if sx > lx - 0.1 or sy > ly - 0.1:
                    continue
                px = float(rng.uniform(-lx / 2 + sx / 2, lx / 2 - sx / 2))
                py = float(rng.uniform(-ly / 2 + sy / 2, ly / 2 - sy / 2))
                local = s.box(
                    [px - sx / 2, py - sy / 2, h], [px + sx / 2, py + sy / 2, h + sz], skip="z0"
                )
                # Turned about its own centre (not aligned with the table), then table → room.
                centre = np.array([px, py, 0.0])
                local = (local - centre) @ _rot_z(rng.uniform(-0.3, 0.3)).T + centre
                pts = local @ _rot_z(yaw).T + c
            elif kind in ("floor_box", "copier"):
                if kind == "copier":
                    sx, sy, sz = 0.6, 0.55, float(rng.uniform(0.9, 1.2))
                    col = np.array([200.0, 200.0, 195.0]) * rng.uniform(0.8, 1.05)
                else:
                    sx, sy = float(rng.uniform(0.25, 0.6)), float(rng.uniform(0.25, 0.6))
                    sz = float(rng.uniform(0.2, 0.7))
                slot = self._floor_slot(sx / 2, sy / 2, margin=0.02, tries=30)
                if slot is None:
                    continue
                lo = np.array([slot[0] - sx / 2, slot[1] - sy / 2, 0.0])
                hi = np.array([slot[0] + sx / 2, slot[1] + sy / 2, sz])
                self.floor_used.append((lo[0], lo[1], hi[0], hi[1]))
                self.carves.append(_Carve(lo - 0.01, hi, ("floor", "wall")))
                pts = s.box(lo, hi, skip="z0")
            elif kind == "bin":
                r = float(rng.uniform(0.12, 0.2))
                slot = self._floor_slot(r, r, margin=0.02, tries=30)
                if slot is None:
                    continue
                self.floor_used.append((slot[0] - r, slot[1] - r, slot[0] + r, slot[1] + r))
                hz = float(rng.uniform(0.3, 0.5))
                pts = np.concatenate(
                    [
                        s.cylinder(slot[0], slot[1], 0.0, hz, r * 0.85, r),
                        s.cylinder(slot[0], slot[1], 0.02, hz, r * 0.8, r * 0.95, bottom=True),
                    ]
                )
            elif kind == "plant":
                r = float(rng.uniform(0.12, 0.2))
                slot = self._floor_slot(r + 0.1, r + 0.1, margin=0.02, tries=30)
                if slot is None:
                    continue
                self.floor_used.append((slot[0] - r, slot[1] - r, slot[0] + r, slot[1] + r))
                ph = float(rng.uniform(0.25, 0.4))
                pot = s.cylinder(slot[0], slot[1], 0.0, ph, r * 0.8, r, top=True)
                fr = float(rng.uniform(0.25, 0.4))
                leaves = s.ellipsoid([slot[0], slot[1], ph + fr], [fr, fr, fr * 1.3])
                leaves += rng.normal(0, 0.04, leaves.shape)  # foliage is not a smooth surface
                green = np.array([60.0, 110.0, 50.0]) * rng.uniform(0.7, 1.2)
                self.add("clutter", [(pot, col, 10.0), (leaves, green, 18.0)])
                made += 1
                continue
            elif kind == "picture":
                pw, ph = float(rng.uniform(0.3, 0.9)), float(rng.uniform(0.3, 0.7))
                z0 = float(rng.uniform(1.2, 1.7))
                slot = self._wall_slot(pw, z0, z0 + ph, 0.0, margin=0.1, tries=20)
                if slot is None:
                    continue
                w, s0, pw = slot
                self._reserve_wall(w, s0, s0 + pw, z0, z0 + ph, 0.0)
                wall = self.walls[w]
                local = s.box([s0, 0.0, z0], [s0 + pw, 0.03, z0 + ph], skip="y0")
                pts = wall.to_world(local)
                self.carves.append(
                    _Carve(*wall.box_world([s0, -0.05, z0], [s0 + pw, 0.03, z0 + ph]), ("wall",))
                )
                # A picture: noisy random colours, not a uniform panel.
                rgb = np.clip(np.rint(col + rng.normal(0, 35, (len(pts), 3))), 0, 255).astype(
                    np.uint8
                )
                self.objects.append(SynthObject("clutter", pts, rgb))
                made += 1
                continue
            else:
                continue
            self.add("clutter", [(pts, col, 12.0)])
            made += 1
        if not any(o.cls == "clutter" for o in self.objects):
            lo = np.array([self.L / 2, 0.05, 0.0])
            pts = self.s.box(lo, lo + [0.3, 0.3, 0.3], skip="z0")
            self.add("clutter", [(pts, _rand_hue_color(rng), 12.0)])

    # -- final assembly ------------------------------------------------------------------------

    def finish(self) -> list[SynthObject]:
        """Carve hidden surfaces, add sensor jitter, round to mm; objects in class order."""
        out = []
        for obj in self.objects:
            keep = np.ones(len(obj.xyz), dtype=bool)
            for c in self.carves:
                if obj.cls in c.victims:
                    keep &= ~np.all((obj.xyz >= c.lo) & (obj.xyz <= c.hi), axis=1)
            xyz = obj.xyz[keep]
            xyz = xyz + self.rng.normal(0, JITTER, xyz.shape)
            if len(xyz):
                out.append(SynthObject(obj.cls, xyz, obj.rgb[keep]))
        # Stable sort by class index keeps creation order within a class (instance numbering).
        out.sort(key=lambda o: _CLASS_INDEX[o.cls])
        return out


def make_room(
    rng: np.random.Generator,
    room_type: str = "office",
    *,
    density: float = 1.0,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    name: str | None = None,
) -> SynthRoom:
    """Generate one room in memory (no files). Coordinates are rounded to mm (3 decimals).

    Objects come out ordered by class index in `CLASSES`, then by creation order; every room
    has at least one object of each of the 13 classes.
    """
    if room_type not in ROOM_TYPES:
        raise ConfigError(
            f"unknown room type {room_type!r}; valid types: {', '.join(sorted(ROOM_TYPES))}"
        )
    b = _RoomBuilder(rng, ROOM_TYPES[room_type], density)
    b.structure()
    # Wall-bound objects whose wall space is scarce go first: openings, then boards / bookcases.
    b.doors()
    b.windows_()
    b.columns()
    b.beams()
    b.boards()
    b.furniture()
    b.sofas()
    b.bookcases()
    b.clutter()
    objects = b.finish()
    shift = np.asarray(origin, dtype=np.float64)
    for o in objects:
        # "+ 0.0" turns -0.0 into 0.0 so no "-0.000" is written.
        o.xyz = np.round(o.xyz + shift, 3) + 0.0
    return SynthRoom(
        name=name or f"{room_type}_1",
        room_type=room_type,
        size=(round(b.L, 3), round(b.W, 3), round(b.H, 3)),
        origin=tuple(float(v) for v in shift),
        objects=objects,
    )


def format_points(xyz: np.ndarray, rgb: np.ndarray) -> str:
    """The S3DIS text format: one ``x y z r g b`` line per point, 3 decimals, integer colours."""
    xyz = np.asarray(xyz, dtype=np.float64)
    rgb = np.asarray(rgb).astype(np.int64)
    cols = [*xyz.T.tolist(), *rgb.T.tolist()]
    # %-formatting is ~2x faster than str.format / f-strings here (the write is dominated by it).
    fmt = "%.3f %.3f %.3f %d %d %d\n"
    return "".join(fmt % row for row in zip(*cols, strict=True))


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


class _Writer:
    """Atomic file writes on a few threads: the fsync of every atomic write dominates the wall
    time of many small files (12 rooms: 7.9 s serial), and fsync releases the GIL."""

    def __init__(self, workers: int = 8):
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.futures: list[Future] = []

    def write(self, path: Path, data: bytes) -> None:
        self.futures.append(self.pool.submit(_write_bytes, path, data))
        if len(self.futures) > 256:  # bound the bytes held in flight
            self.drain()

    def drain(self) -> None:
        futures, self.futures = self.futures, []
        for f in futures:
            f.result()  # re-raises the first write error (disk full, permissions, …)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.drain()
        finally:
            self.pool.shutdown(wait=True)


_ANNOTATION_RE = re.compile(r"^([A-Za-z]+)_(\d+)\.txt$")


def _check_count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _prepare_out(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} exists and is not a directory; give a folder to write into")
    return out


def room_plan(area: int, rooms_per_area: int) -> list[tuple[int, str, str]]:
    """(room index, room type, room name) of the rooms of one area, e.g. ``office_1``."""
    plan, seen = [], {}
    for i in range(rooms_per_area):
        rtype = _ROOM_CYCLE[(i + 2 * (area - 1)) % len(_ROOM_CYCLE)]
        seen[rtype] = seen.get(rtype, 0) + 1
        plan.append((i, rtype, f"{rtype}_{seen[rtype]}"))
    return plan


def synth_s3dis(
    out: str | Path,
    *,
    areas: int | Sequence[int] = 6,
    rooms_per_area: int = 2,
    seed: int = 0,
    density: float = 1.0,
    progress: bool = True,
) -> list[Path]:
    """Write synthetic S3DIS rooms in the raw Stanford layout; return the room folders.

    ``<out>/Area_<a>/<room>/Annotations/<class>_<i>.txt`` and ``<out>/Area_<a>/<room>/<room>.txt``
    (the concatenation of the annotation files in natural name order, see `annotation_order`).
    `areas` is a count (areas 1..n) or an explicit list of area numbers. Room ``i`` of area ``a``
    is a pure function of ``(seed, a, i, density)``: generating a subset of areas writes the same
    bytes for those areas. Stale ``<class>_<i>.txt`` files left in a room's Annotations folder by
    an earlier run are removed so the room file stays the concatenation of the annotations.
    """
    seed = _check_count("seed", seed, 0)
    rooms_per_area = _check_count("rooms_per_area", rooms_per_area)
    if isinstance(areas, (int, np.integer)) and not isinstance(areas, bool):
        area_ids = list(range(1, _check_count("areas", areas) + 1))
    else:
        area_ids = [_check_count("area number", a) for a in areas]
        if not area_ids:
            raise ConfigError("areas must name at least one area")
    if not (isinstance(density, (int, float)) and math.isfinite(density) and density > 0):
        raise ConfigError(f"density must be a positive number; got {density!r}")
    out = _prepare_out(out)
    jobs = [(a, *p) for a in area_ids for p in room_plan(a, rooms_per_area)]
    written = []
    with _Writer() as writer:
        for a, i, rtype, name in tqdm(jobs, desc="synth s3dis", unit="room", disable=not progress):
            # Area frame: each area has its own random global offset, rooms sit side by side in it.
            area_rng = np.random.default_rng(np.random.SeedSequence([seed, a]))
            ax, ay = area_rng.uniform(-25.0, 25.0, size=2)
            rng = np.random.default_rng(np.random.SeedSequence([seed, a, i]))
            origin = (ax + i * _ROOM_PITCH, ay + float(rng.uniform(-1.0, 1.0)), 0.0)
            room = make_room(rng, rtype, density=density, origin=origin, name=name)
            written.append(write_room(out / f"Area_{a}" / name, room, writer=writer))
    return written


def write_room(room_dir: str | Path, room: SynthRoom, *, writer: _Writer | None = None) -> Path:
    """Write one room's annotation files and room-level file (atomic per file)."""
    if writer is None:
        with _Writer() as w:
            return write_room(room_dir, room, writer=w)
    room_dir = Path(room_dir)
    ann = room_dir / "Annotations"
    ann.mkdir(parents=True, exist_ok=True)
    counters: dict[str, int] = {}
    files: dict[str, bytes] = {}
    for obj in room.objects:
        counters[obj.cls] = counters.get(obj.cls, 0) + 1
        files[f"{obj.cls}_{counters[obj.cls]}.txt"] = format_points(obj.xyz, obj.rgb).encode(
            "ascii"
        )
    for stale in ann.iterdir():
        if _ANNOTATION_RE.match(stale.name) and stale.name not in files:
            stale.unlink()
    names = sorted(files, key=annotation_order)
    for fname in names:
        writer.write(ann / fname, files[fname])
    writer.write(room_dir / f"{room_dir.name}.txt", b"".join(files[f] for f in names))
    return room_dir


def annotation_order(name: str) -> tuple[str, int]:
    """Natural order of annotation file names (``chair_2`` before ``chair_10``): the order of the
    room-level file, and the order `pointseg.data.s3dis.parse_room` reads them in."""
    m = _ANNOTATION_RE.match(name)
    if m is None:
        raise ValueError(f"not an annotation file name <class>_<i>.txt: {name!r}")
    return m[1], int(m[2])


# ---------------------------------------------------------------------------------------------
# ModelNet-style meshes
# ---------------------------------------------------------------------------------------------

Mesh = tuple[np.ndarray, np.ndarray]  # vertices (V, 3) float64, faces (F, 3) int64


def _box_mesh(lo, hi) -> Mesh:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    v = np.array(
        [[x, y, z] for z in (lo[2], hi[2]) for y in (lo[1], hi[1]) for x in (lo[0], hi[0])]
    )
    f = np.array(
        [
            [0, 2, 1], [1, 2, 3],  # bottom (z = lo)
            [4, 5, 6], [5, 7, 6],  # top
            [0, 1, 4], [1, 5, 4],  # y = lo
            [2, 6, 3], [3, 6, 7],  # y = hi
            [0, 4, 2], [2, 4, 6],  # x = lo
            [1, 3, 5], [3, 7, 5],  # x = hi
        ]
    )  # fmt: skip
    return v, f


def _frustum_mesh(cx, cy, z0, z1, r0, r1, seg=16, bottom=True, top=True) -> Mesh:
    """Vertical frustum (cylinder when r0 == r1, cone when r1 == 0) with optional caps.

    A zero radius collapses its ring to the centre vertex (apex), so no face is degenerate.
    """
    a = np.linspace(0, 2 * math.pi, seg, endpoint=False)
    ring0 = np.stack([cx + r0 * np.cos(a), cy + r0 * np.sin(a), np.full(seg, z0)], 1)
    ring1 = np.stack([cx + r1 * np.cos(a), cy + r1 * np.sin(a), np.full(seg, z1)], 1)
    v = np.concatenate([ring0, ring1, [[cx, cy, z0], [cx, cy, z1]]]).astype(float)
    i = np.arange(seg)
    j = (i + 1) % seg
    c0, c1 = np.full(seg, 2 * seg), np.full(seg, 2 * seg + 1)
    if r1 <= 0:  # cone pointing up
        f = [np.stack([i, j, c1], 1)]
        top = False
    elif r0 <= 0:  # cone pointing down
        f = [np.stack([c0, seg + j, seg + i], 1)]
        bottom = False
    else:
        f = [np.stack([i, j, seg + i], 1), np.stack([j, seg + j, seg + i], 1)]
    if bottom:
        f.append(np.stack([c0, j, i], 1))
    if top:
        f.append(np.stack([c1, seg + i, seg + j], 1))
    return _compact(v, np.concatenate(f))


def _compact(v: np.ndarray, f: np.ndarray) -> Mesh:
    """Drop vertices no face uses and renumber the faces."""
    used, inverse = np.unique(f, return_inverse=True)
    return v[used], inverse.reshape(f.shape).astype(np.int64)


def _sphere_mesh(c, radii, nlat=8, nlon=12) -> Mesh:
    th = np.linspace(0, math.pi, nlat + 1)[1:-1]
    ph = np.linspace(0, 2 * math.pi, nlon, endpoint=False)
    t, p = np.meshgrid(th, ph, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    v = np.concatenate([[[0, 0, 1.0]], ring, [[0, 0, -1.0]]]) * np.asarray(radii) + np.asarray(c)
    f = []
    k = np.arange(nlon)
    kn = (k + 1) % nlon
    f.append(np.stack([np.zeros(nlon, int), 1 + k, 1 + kn], 1))
    for r in range(nlat - 2):
        a, b = 1 + r * nlon, 1 + (r + 1) * nlon
        f.append(np.stack([a + k, b + k, a + kn], 1))
        f.append(np.stack([a + kn, b + k, b + kn], 1))
    last = len(v) - 1
    base = 1 + (nlat - 2) * nlon
    f.append(np.stack([np.full(nlon, last), base + kn, base + k], 1))
    return v, np.concatenate(f)


def _merge(*meshes: Mesh) -> Mesh:
    vs, fs, off = [], [], 0
    for v, f in meshes:
        vs.append(v)
        fs.append(f + off)
        off += len(v)
    return np.concatenate(vs), np.concatenate(fs).astype(np.int64)


def _u(rng, lo, hi) -> float:
    return float(rng.uniform(lo, hi))


def _m_table(rng) -> Mesh:
    lx, ly, h = _u(rng, 0.8, 2.0), _u(rng, 0.5, 1.0), _u(rng, 0.6, 0.8)
    tt, lw = _u(rng, 0.03, 0.07), _u(rng, 0.04, 0.09)
    legs = [
        _box_mesh(
            [sx * (lx / 2 - lw) - lw / 2, sy * (ly / 2 - lw) - lw / 2, 0],
            [sx * (lx / 2 - lw) + lw / 2, sy * (ly / 2 - lw) + lw / 2, h - tt],
        )
        for sx in (-1, 1)
        for sy in (-1, 1)
    ]
    return _merge(_box_mesh([-lx / 2, -ly / 2, h - tt], [lx / 2, ly / 2, h]), *legs)


def _m_chair(rng) -> Mesh:
    w, d, sh, bh = _u(rng, 0.4, 0.55), _u(rng, 0.4, 0.55), _u(rng, 0.4, 0.5), _u(rng, 0.35, 0.6)
    lw = _u(rng, 0.025, 0.05)
    parts = [
        _box_mesh([-w / 2, -d / 2, sh - 0.05], [w / 2, d / 2, sh]),
        _box_mesh([-w / 2, -d / 2 - 0.05, sh], [w / 2, -d / 2, sh + bh]),
    ]
    for sx in (-1, 1):
        for sy in (-1, 1):
            cx, cy = sx * (w / 2 - lw), sy * (d / 2 - lw)
            parts.append(
                _box_mesh([cx - lw / 2, cy - lw / 2, 0], [cx + lw / 2, cy + lw / 2, sh - 0.05])
            )
    return _merge(*parts)


def _m_stool(rng) -> Mesh:
    r, h = _u(rng, 0.15, 0.25), _u(rng, 0.45, 0.8)
    n_legs = int(rng.integers(3, 5))
    parts = [_frustum_mesh(0, 0, h - 0.04, h, r, r)]
    for k in range(n_legs):
        a = 2 * math.pi * k / n_legs
        x, y = 0.8 * r * math.cos(a), 0.8 * r * math.sin(a)
        parts.append(_frustum_mesh(x, y, 0, h - 0.04, 0.02, 0.018, seg=6))
    return _merge(*parts)


def _m_lamp(rng) -> Mesh:
    br, ph = _u(rng, 0.08, 0.16), _u(rng, 0.3, 0.8)
    sr0, sr1, sh = _u(rng, 0.12, 0.25), _u(rng, 0.05, 0.12), _u(rng, 0.15, 0.3)
    return _merge(
        _frustum_mesh(0, 0, 0, 0.03, br, br),
        _frustum_mesh(0, 0, 0.03, 0.03 + ph, 0.012, 0.012, seg=8),
        _frustum_mesh(
            0, 0, 0.03 + ph - sh * 0.3, 0.03 + ph + sh * 0.7, sr0, sr1, top=False, bottom=False
        ),
    )


def _m_bottle(rng) -> Mesh:
    r, h = _u(rng, 0.03, 0.06), _u(rng, 0.15, 0.3)
    nr, nh = r * _u(rng, 0.3, 0.5), h * _u(rng, 0.15, 0.3)
    sh = h * _u(rng, 0.1, 0.2)
    return _merge(
        _frustum_mesh(0, 0, 0, h, r, r, top=False),
        _frustum_mesh(0, 0, h, h + sh, r, nr, bottom=False, top=False),
        _frustum_mesh(0, 0, h + sh, h + sh + nh, nr, nr, bottom=False),
    )


def _m_cup(rng) -> Mesh:
    r0, r1, h = _u(rng, 0.03, 0.045), _u(rng, 0.04, 0.055), _u(rng, 0.07, 0.12)
    hx = r1 + _u(rng, 0.02, 0.035)
    handle = _merge(
        _box_mesh([r1 - 0.005, -0.006, h * 0.75], [hx, 0.006, h * 0.75 + 0.01]),
        _box_mesh([r1 - 0.005, -0.006, h * 0.2], [hx, 0.006, h * 0.2 + 0.01]),
        _box_mesh([hx - 0.01, -0.006, h * 0.2], [hx, 0.006, h * 0.75 + 0.01]),
    )
    return _merge(_frustum_mesh(0, 0, 0, h, r0, r1, top=False), handle)


def _m_bowl(rng) -> Mesh:
    r0, r1, h = _u(rng, 0.03, 0.06), _u(rng, 0.08, 0.14), _u(rng, 0.04, 0.08)
    return _merge(
        _frustum_mesh(0, 0, 0, h * 0.4, r0, r1 * 0.8, top=False),
        _frustum_mesh(0, 0, h * 0.4, h, r1 * 0.8, r1, bottom=False, top=False),
    )


def _m_cone(rng) -> Mesh:
    r, h = _u(rng, 0.1, 0.3), _u(rng, 0.2, 0.6)
    return _frustum_mesh(0, 0, 0, h, r, 0.0, top=False, seg=20)


def _m_monitor(rng) -> Mesh:
    w, h, t = _u(rng, 0.4, 0.7), _u(rng, 0.25, 0.45), _u(rng, 0.02, 0.06)
    ph = _u(rng, 0.08, 0.18)
    return _merge(
        _box_mesh([-w / 2, -t / 2, ph], [w / 2, t / 2, ph + h]),
        _box_mesh([-0.025, -0.02, 0.01], [0.025, 0.02, ph + 0.05]),
        _box_mesh([-0.12, -0.09, 0], [0.12, 0.09, 0.015]),
    )


def _m_bed(rng) -> Mesh:
    lx, ly = _u(rng, 1.9, 2.2), _u(rng, 0.9, 1.8)
    fh, mh, hb = _u(rng, 0.2, 0.35), _u(rng, 0.15, 0.25), _u(rng, 0.5, 1.0)
    return _merge(
        _box_mesh([-lx / 2, -ly / 2, 0.05], [lx / 2, ly / 2, fh]),
        _box_mesh([-lx / 2 + 0.03, -ly / 2 + 0.03, fh], [lx / 2 - 0.03, ly / 2 - 0.03, fh + mh]),
        _box_mesh([-lx / 2 - 0.06, -ly / 2, 0], [-lx / 2, ly / 2, hb]),
        _sphere_mesh([-lx / 2 + 0.3, 0, fh + mh + 0.05], [0.2, ly * 0.35, 0.06]),
    )


def _m_sofa(rng) -> Mesh:
    lx, d = _u(rng, 1.4, 2.4), _u(rng, 0.75, 1.0)
    sh, bh, ah, aw = _u(rng, 0.35, 0.45), _u(rng, 0.7, 0.9), _u(rng, 0.5, 0.65), _u(rng, 0.1, 0.22)
    bt = _u(rng, 0.15, 0.25)
    return _merge(
        _box_mesh([-lx / 2 + aw, -d / 2 + bt, 0], [lx / 2 - aw, d / 2, sh]),
        _box_mesh([-lx / 2, -d / 2, 0], [lx / 2, -d / 2 + bt, bh]),
        _box_mesh([-lx / 2, -d / 2 + bt, 0], [-lx / 2 + aw, d / 2, ah]),
        _box_mesh([lx / 2 - aw, -d / 2 + bt, 0], [lx / 2, d / 2, ah]),
    )


def _m_airplane(rng) -> Mesh:
    ln, r = _u(rng, 1.5, 3.0), _u(rng, 0.08, 0.16)
    span, chord = ln * _u(rng, 0.8, 1.2), _u(rng, 0.25, 0.5)
    wx = _u(rng, -0.15, 0.1) * ln
    tail = _u(rng, 0.3, 0.5) * span * 0.5
    # Fuselage along x: a z-axis frustum rotated onto x.
    fus_v, fus_f = _merge(
        _frustum_mesh(0, 0, -ln / 2, ln / 2 - ln * 0.12, r, r),
        _frustum_mesh(0, 0, ln / 2 - ln * 0.12, ln / 2, r, 0.0, bottom=False, top=False),
    )
    fus_v = fus_v[:, [2, 1, 0]]
    return _merge(
        (fus_v, fus_f),
        _box_mesh([wx - chord / 2, -span / 2, -0.015], [wx + chord / 2, span / 2, 0.015]),
        _box_mesh([-ln / 2, -tail, -0.01], [-ln / 2 + chord * 0.6, tail, 0.01]),
        _box_mesh([-ln / 2, -0.01, 0], [-ln / 2 + chord * 0.6, 0.01, tail * 0.9]),
    )


_MESH_MAKERS: dict[str, Callable[[np.random.Generator], Mesh]] = {
    "airplane": _m_airplane,
    "bed": _m_bed,
    "bottle": _m_bottle,
    "bowl": _m_bowl,
    "chair": _m_chair,
    "cone": _m_cone,
    "cup": _m_cup,
    "lamp": _m_lamp,
    "monitor": _m_monitor,
    "sofa": _m_sofa,
    "stool": _m_stool,
    "table": _m_table,
}
MODELNET_SYNTH_CLASSES: tuple[str, ...] = tuple(sorted(_MESH_MAKERS))


def make_mesh(cls: str, rng: np.random.Generator) -> Mesh:
    """One random mesh of class `cls`: random proportions, scale and rotation about z.

    Returns vertices (V, 3) float64 and triangular faces (F, 3) int64 (z up, base at z = 0).
    """
    if cls not in _MESH_MAKERS:
        raise ConfigError(
            f"no synthetic generator for ModelNet class {cls!r}; "
            f"available: {', '.join(MODELNET_SYNTH_CLASSES)}"
        )
    v, f = _MESH_MAKERS[cls](rng)
    # Mild anisotropic stretch keeps instances of a class from being mere rescalings.
    v = v * rng.uniform(0.9, 1.1, size=3) * rng.uniform(0.5, 2.0)
    v = v @ _rot_z(float(rng.uniform(0, 2 * math.pi))).T
    v[:, 2] -= v[:, 2].min()  # every shape stands on z = 0 (the airplane is built around z = 0)
    return v, f


def mesh_to_off(vertices: np.ndarray, faces: np.ndarray) -> str:
    """OFF text: ``OFF``, ``<nv> <nf> 0``, vertex lines, ``3 i j k`` face lines."""
    lines = [f"OFF\n{len(vertices)} {len(faces)} 0\n"]
    vfmt, ffmt = "%.6f %.6f %.6f\n", "3 %d %d %d\n"
    lines.extend(vfmt % tuple(p) for p in np.asarray(vertices).tolist())
    lines.extend(ffmt % tuple(t) for t in np.asarray(faces).tolist())
    return "".join(lines)


def synth_modelnet(
    out: str | Path,
    *,
    classes: Sequence[str] | None = None,
    per_class: int = 20,
    test_per_class: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[Path]:
    """Write ModelNet-layout meshes ``<out>/<class>/{train,test}/<class>_<0001>.off``.

    `per_class` training meshes and `test_per_class` (default ``max(1, per_class // 4)``) test
    meshes per class; numbering continues from train into test, as in ModelNet40. Mesh
    ``(class, split, i)`` is a pure function of ``(seed, class, i)``. Returns the written paths.
    """
    classes = list(MODELNET_SYNTH_CLASSES if classes is None else classes)
    if not classes:
        raise ConfigError("classes must name at least one class")
    unknown = [c for c in classes if c not in _MESH_MAKERS]
    if unknown:
        raise ConfigError(
            f"no synthetic generator for ModelNet class(es) {', '.join(map(repr, unknown))}; "
            f"available: {', '.join(MODELNET_SYNTH_CLASSES)}"
        )
    per_class = _check_count("per_class", per_class)
    test_per_class = max(1, per_class // 4) if test_per_class is None else test_per_class
    test_per_class = _check_count("test_per_class", test_per_class)
    seed = _check_count("seed", seed, 0)
    out = _prepare_out(out)
    jobs = [
        (c, "train" if i < per_class else "test", i)
        for c in classes
        for i in range(per_class + test_per_class)
    ]
    written = []
    with _Writer() as writer:
        for c, split, i in tqdm(jobs, desc="synth modelnet", unit="mesh", disable=not progress):
            # Class id in the seed sequence by its position in the sorted list: adding classes to the
            # request does not change the meshes of the others.
            rng = np.random.default_rng(
                np.random.SeedSequence([seed, MODELNET_SYNTH_CLASSES.index(c), i])
            )
            v, f = make_mesh(c, rng)
            path = out / c / split / f"{c}_{i + 1:04d}.off"
            writer.write(path, mesh_to_off(v, f).encode("ascii"))
            written.append(path)
    return written
