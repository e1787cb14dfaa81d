"""The room under construction: its box, walls, free space, objects and hidden surfaces.

:class:`RoomBuilder` holds the state every element of a room needs (the random generator, the
room type, the surface sampler, the wall and floor space already taken, the objects made so far,
the hidden boxes to carve away) and the placement primitives (`wall_slot`, `floor_slot`,
`reserve_wall`). The elements themselves are functions of a builder, one module per idea:
`structure` (floor, ceiling, walls, openings, columns, beams, boards), `furniture` (tables,
chairs, sofas, bookcases) and `clutter`; `room.make_room` calls them in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pointseg.data.synthetic.catalog import BASE_DENSITY, CLASS_INDEX, JITTER, RoomType, SynthObject
from pointseg.data.synthetic.sampling import (
    FLOOR_COLORS,
    WALL_COLORS,
    SurfaceSampler,
    object_color,
    paint,
)


@dataclass
class Wall:
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
class Carve:
    """Points of the classes `victims` inside [lo, hi] are removed (hidden by a solid object)."""

    lo: np.ndarray
    hi: np.ndarray
    victims: tuple[str, ...] = ("ceiling", "floor", "wall")


class RoomBuilder:
    """One room being built (room coordinates: min corner at the origin, x < L, y < W, z < H)."""

    def __init__(self, rng: np.random.Generator, rtype: RoomType, density: float):
        self.rng = rng
        self.t = rtype
        self.s = SurfaceSampler(rng, BASE_DENSITY * density)
        self.L = float(rng.uniform(*rtype.length))
        self.W = float(rng.uniform(*rtype.width))
        self.H = float(rng.uniform(*rtype.height))
        L, W = self.L, self.W
        self.walls = [
            Wall(np.array([0.0, 0.0, 0.0]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), L),
            Wall(np.array([L, 0.0, 0.0]), np.array([0, 1.0, 0]), np.array([-1.0, 0, 0]), W),
            Wall(np.array([L, W, 0.0]), np.array([-1.0, 0, 0]), np.array([0, -1.0, 0]), L),
            Wall(np.array([0.0, W, 0.0]), np.array([0, -1.0, 0]), np.array([1.0, 0, 0]), W),
        ]
        # Occupied wall intervals (s0, s1, z0, z1) per wall and floor footprints (x0, y0, x1, y1).
        self.wall_used: list[list[tuple[float, float, float, float]]] = [[] for _ in self.walls]
        self.floor_used: list[tuple[float, float, float, float]] = []
        self.objects: list[SynthObject] = []
        self.carves: list[Carve] = []
        self.tables: list[
            tuple[np.ndarray, float, float, float, float]
        ] = []  # centre, yaw, lx, ly, h
        self.windows: list[tuple[int, float, float, float]] = []  # wall, s0, s1, sill
        self.wall_color = object_color(rng, WALL_COLORS, 0.04)
        self.ceiling_color = self.wall_color * rng.uniform(0.62, 0.8)
        self.floor_color = object_color(rng, FLOOR_COLORS)

    # -- bookkeeping ---------------------------------------------------------------------------

    def add(self, cls: str, parts: list[tuple[np.ndarray, np.ndarray | Sequence[float], float]]):
        """Add one object made of parts (points (n,3), colour (3,), noise std)."""
        xyz = [p for p, _, _ in parts]
        rgb = [paint(self.rng, len(p), c, sig) for p, c, sig in parts]
        self.objects.append(SynthObject(cls, np.concatenate(xyz), np.concatenate(rgb)))

    def overlaps_floor(self, box) -> bool:
        x0, y0, x1, y1 = box
        if x0 < -1e-6 or y0 < -1e-6 or x1 > self.L + 1e-6 or y1 > self.W + 1e-6:
            return True
        return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in self.floor_used)

    def wall_slot(
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
                    if self.overlaps_floor((bl[0], bl[1], bh[0], bh[1])):
                        continue
                return w, s0, width
            if attempt == 0:
                width *= shrink
        return None

    def reserve_wall(self, w, s0, s1, z0, z1, depth):
        self.wall_used[w].append((s0, s1, z0, z1))
        if depth > 0:
            bl, bh = self.walls[w].box_world([s0, 0.0, 0.0], [s1, depth, 0.0])
            self.floor_used.append((bl[0], bl[1], bh[0], bh[1]))

    def floor_slot(self, hx: float, hy: float, margin: float = 0.15, tries: int = 80):
        """Centre (x, y) of a free axis-aligned footprint of half sizes (hx, hy), or None."""
        for _ in range(tries):
            if self.L - 2 * (hx + margin) < 0 or self.W - 2 * (hy + margin) < 0:
                return None
            x = float(self.rng.uniform(hx + margin, self.L - hx - margin))
            y = float(self.rng.uniform(hy + margin, self.W - hy - margin))
            if not self.overlaps_floor((x - hx, y - hy, x + hx, y + hy)):
                return x, y
        return None

    def count(self, rng_range: tuple[int, int]) -> int:
        return int(self.rng.integers(rng_range[0], rng_range[1] + 1))

    def inside(self, x, y, m=0.3) -> bool:
        return m <= x <= self.L - m and m <= y <= self.W - m

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
        out.sort(key=lambda o: CLASS_INDEX[o.cls])
        return out
