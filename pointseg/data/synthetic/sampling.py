"""Surface sampling and colours of synthetic rooms.

:class:`SurfaceSampler` draws area-uniform points on rectangles, boxes, frustums, discs and
ellipsoids at one density (points per m²), so every surface of a room is equally dense however it
is cut into parts. The palettes and colour helpers give each object one base colour plus
per-point noise, mostly in brightness, like the real scans.
"""

from __future__ import annotations

import math

import numpy as np

# Base colours (RGB) of the materials, close to the means measured on the real rooms in
# ../shared/data/s3dis_raw (walls ~(155,155,140), ceilings darker ~(95..125), boards ~(165,170,170),
# doors brown ~(125,88,52), chairs dark ~(55..70)).
WALL_COLORS = ((160, 158, 145), (172, 170, 158), (150, 150, 146), (182, 177, 162), (142, 138, 122))
FLOOR_COLORS = ((110, 108, 95), (138, 100, 66), (82, 82, 88), (150, 148, 140), (96, 110, 120))
WOOD_COLORS = ((150, 108, 68), (120, 85, 55), (175, 140, 100))
TABLE_COLORS = ((141, 146, 147), (185, 184, 178), *WOOD_COLORS, (70, 70, 72))
CHAIR_COLORS = ((55, 55, 60), (62, 72, 110), (130, 52, 50), (95, 95, 100), (40, 40, 42))
SOFA_COLORS = ((112, 72, 46), (122, 122, 128), (150, 62, 60), (72, 92, 130), (137, 114, 75))
METAL_COLORS = ((160, 162, 166), (90, 90, 94), (40, 40, 44))
BOARD_COLORS = ((212, 214, 214), (205, 208, 212), (198, 202, 200))
WINDOW_GLASS = (165, 182, 200)
WINDOW_FRAMES = ((215, 215, 210), (82, 82, 88), (160, 162, 165))


class SurfaceSampler:
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


def object_color(rng: np.random.Generator, palette, spread: float = 0.06) -> np.ndarray:
    """One object's colour: a palette entry scaled by a per-object shade and tinted slightly."""
    base = np.asarray(palette[rng.integers(len(palette))], dtype=np.float64)
    return base * rng.uniform(1 - spread, 1 + spread) + rng.normal(0, 4, 3)


def paint(rng: np.random.Generator, n: int, color, sigma: float) -> np.ndarray:
    """(n, 3) uint8 colours: `color` + per-point Gaussian noise of std `sigma`, clipped."""
    c = np.asarray(color, dtype=np.float64) + rng.normal(0, sigma, (n, 3))
    # A common luminance term too: real colour noise is mostly brightness (lighting, texture).
    c += rng.normal(0, sigma * 0.6, (n, 1))
    return np.clip(np.rint(c), 0, 255).astype(np.uint8)


def rand_hue_color(rng: np.random.Generator) -> np.ndarray:
    """A random saturated-ish colour (books, clutter): HSV with random hue."""
    h = rng.random()
    s = rng.uniform(0.2, 0.85)
    v = rng.uniform(0.25, 0.9)
    k = (np.array([5, 3, 1]) + h * 6) % 6
    rgb = v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)
    return rgb * 255


def rot_z(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
