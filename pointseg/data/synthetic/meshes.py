"""ModelNet-style meshes: primitive-composed shapes of 12 classes, written as OFF files.

``<out>/<class>/{train,test}/<class>_<0001>.off`` triangle meshes (``OFF\\n<nv> <nf> 0``) of
primitive-composed shapes (table = top + 4 legs, chair = seat + back + legs, lamp = base + pole +
cone shade, …) with random proportions, scale and rotation about z.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pointseg.data.synthetic.sampling import rot_z
from pointseg.data.synthetic.writer import FileWriter, check_count, prepare_out
from pointseg.errors import ConfigError

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
    v = v @ rot_z(float(rng.uniform(0, 2 * math.pi))).T
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
    per_class = check_count("per_class", per_class)
    test_per_class = max(1, per_class // 4) if test_per_class is None else test_per_class
    test_per_class = check_count("test_per_class", test_per_class)
    seed = check_count("seed", seed, 0)
    out = prepare_out(out)
    jobs = [
        (c, "train" if i < per_class else "test", i)
        for c in classes
        for i in range(per_class + test_per_class)
    ]
    written = []
    with FileWriter() as writer:
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
