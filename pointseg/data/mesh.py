"""Triangle meshes: `.off` / `.ply` readers with clear errors, and area-uniform surface sampling.

:func:`read_mesh` reads ModelNet's OFF files (including the published ones whose header and
counts share a line) and PLY meshes, triangulating polygons as fans; every error names the file
and, for text formats, the line. :func:`sample_surface` draws points uniformly on the surface.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from pointseg.data.ply import read_ply_elements
from pointseg.errors import DataError

MESH_SUFFIXES = (".off", ".ply")


# ----------------------------------------------------------------------------------------------
# Mesh reading
# ----------------------------------------------------------------------------------------------


def _fan(polys: np.ndarray) -> np.ndarray:
    """(F, L) polygons → (F·(L−2), 3) triangles (v0, vt, vt+1), fan triangulation."""
    L = polys.shape[1]
    tris = [np.stack([polys[:, 0], polys[:, t], polys[:, t + 1]], axis=1) for t in range(1, L - 1)]
    # Interleave so the triangles of one polygon stay adjacent: (F, L-2, 3) → (F·(L-2), 3)
    return np.stack(tris, axis=1).reshape(-1, 3)


def _triangulate(polys: list[np.ndarray]) -> np.ndarray:
    """Variable-length polygons → (T, 3) int64 triangles, keeping face order."""
    if not polys:
        return np.zeros((0, 3), np.int64)
    lengths = np.array([len(p) for p in polys])
    if (lengths == lengths[0]).all():
        return _fan(np.stack(polys).astype(np.int64))
    return np.concatenate([_fan(np.asarray(p, np.int64)[None]) for p in polys])


def _check_mesh(
    path: Path,
    vertices: np.ndarray,
    polys: np.ndarray | list[np.ndarray],
    face_lines: np.ndarray | None,
) -> None:
    """Finite vertices, ≥ 3 vertices per face, indices in range; errors name file (and line)."""

    def where(face: int) -> str:
        return (
            f"{path}:{int(face_lines[face])}" if face_lines is not None else f"{path} (face {face})"
        )

    if not np.isfinite(vertices).all():
        bad = int(np.flatnonzero(~np.isfinite(vertices).all(axis=1))[0])
        raise DataError(
            f"{path}: vertex {bad} has a non-finite coordinate {vertices[bad].tolist()}"
        )
    nv = vertices.shape[0]
    if isinstance(polys, np.ndarray):
        if polys.shape[0] and polys.shape[1] < 3:
            raise DataError(f"{where(0)}: face has {polys.shape[1]} vertices, expected at least 3")
        bad_rows = np.flatnonzero(((polys < 0) | (polys >= nv)).any(axis=1))
        if bad_rows.size:
            f = int(bad_rows[0])
            raise DataError(
                f"{where(f)}: face {f} has vertex index out of range 0..{nv - 1}: {polys[f].tolist()}"
            )
        return
    for f, p in enumerate(polys):
        if len(p) < 3:
            raise DataError(f"{where(f)}: face has {len(p)} vertices, expected at least 3")
        if len(p) and (p.min() < 0 or p.max() >= nv):
            raise DataError(
                f"{where(f)}: face {f} has vertex index out of range 0..{nv - 1}: {p.tolist()}"
            )


def _content_lines(text: str) -> tuple[list[str], list[int]]:
    """Non-blank lines with comments (#…) removed, and their 1-based line numbers."""
    if "#" not in text:
        raw = text.splitlines()
        numbers = [i for i, line in enumerate(raw, 1) if not line.isspace() and line]
        return [raw[i - 1].strip() for i in numbers], numbers
    lines, numbers = [], []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
            numbers.append(i)
    return lines, numbers


def _parse_faces_text(
    path: Path, rows: list[str], numbers: list[int]
) -> tuple[np.ndarray | list[np.ndarray], np.ndarray]:
    """Face lines `n i1 … in [extras]` → uniform (F, n) int64 array or list of arrays."""
    fast = _fast_numbers(rows, np.int64)
    if fast is not None and rows:
        c = int(fast[0])
        if c >= 1 and fast.size == len(rows) * (c + 1):
            table = fast.reshape(len(rows), c + 1)
            if (table[:, 0] == c).all():
                return table[:, 1:], np.asarray(numbers, dtype=np.int64)
    toks = [r.split() for r in rows]
    try:
        counts = np.array([int(t[0]) for t in toks], dtype=np.int64)
    except ValueError:
        for t, ln in zip(toks, numbers, strict=True):
            if not re.fullmatch(r"\d+", t[0]):
                raise DataError(
                    f"{path}:{ln}: expected a face line 'n i1 ... in', got {' '.join(t)[:80]!r}"
                ) from None
        raise
    lens = np.array([len(t) for t in toks])
    short = np.flatnonzero(lens < counts + 1)
    if short.size:
        f = int(short[0])
        raise DataError(
            f"{path}:{numbers[f]}: face says {counts[f]} vertices but lists {lens[f] - 1} indices"
        )
    face_lines = np.asarray(numbers, dtype=np.int64)
    try:
        if toks and (counts == counts[0]).all():
            c = int(counts[0])
            flat = [x for t in toks for x in t[1 : c + 1]]
            return np.array(flat, dtype=np.int64).reshape(len(toks), c), face_lines
        return [
            np.array(t[1 : int(n) + 1], dtype=np.int64) for t, n in zip(toks, counts, strict=True)
        ], face_lines
    except ValueError:
        for t, ln in zip(toks, numbers, strict=True):
            try:
                [int(x) for x in t[1 : int(t[0]) + 1]]
            except ValueError:
                raise DataError(
                    f"{path}:{ln}: face indices must be integers, got {' '.join(t)[:80]!r}"
                ) from None
        raise


def _fast_numbers(rows: list[str], dtype: type) -> np.ndarray | None:
    """All whitespace-separated numbers of `rows` parsed in C, or None if any token is not one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fromstring warns when it stops at a bad token
        try:
            out = np.fromstring(" ".join(rows), dtype=dtype, sep=" ")
        except ValueError:
            return None
    return out


def _parse_vertices_text(
    path: Path, rows: list[str], numbers: list[int], first: int = 3
) -> np.ndarray:
    # Fast path: exactly `first` numbers per line (the common case); the slow path below finds
    # and names the offending line otherwise.
    fast = _fast_numbers(rows, np.float64)
    if fast is not None and fast.size == len(rows) * first:
        table = fast.reshape(len(rows), first)
        counts_ok = all(len(r.split()) == first for r in rows[:: max(1, len(rows) // 64)])
        if counts_ok:
            return table
    toks = [r.split() for r in rows]
    for t, ln in zip(toks, numbers, strict=True):
        if len(t) < first:
            raise DataError(f"{path}:{ln}: expected a vertex line 'x y z', got {' '.join(t)!r}")
    try:
        return np.array([t[:first] for t in toks], dtype=np.float64)
    except ValueError:
        for t, ln in zip(toks, numbers, strict=True):
            try:
                [float(x) for x in t[:first]]
            except ValueError:
                raise DataError(
                    f"{path}:{ln}: vertex coordinates must be numbers, got {' '.join(t)!r}"
                ) from None
        raise


def _read_off(path: Path) -> tuple[np.ndarray, np.ndarray]:
    text = path.read_bytes().decode("latin-1")
    lines, numbers = _content_lines(text)
    if not lines:
        raise DataError(f"{path}: empty file, expected an OFF header")
    # Header keyword, optionally glued to the counts: "OFF", "OFF 3 1 0", or ModelNet's "OFF3 1 0".
    m = re.match(r"^(C?N?OFF)(.*)$", lines[0])
    if not m:
        raise DataError(f"{path}:{numbers[0]}: expected 'OFF' header, got {lines[0][:80]!r}")
    rest, pos = m.group(2).strip(), 1
    if not rest:
        if len(lines) < 2:
            raise DataError(f"{path}: missing 'n_vertices n_faces n_edges' line after OFF")
        rest, pos = lines[1], 2
    count_line = numbers[pos - 1]
    parts = rest.split()
    if len(parts) < 2 or not all(re.fullmatch(r"\d+", p) for p in parts[:3]):
        raise DataError(
            f"{path}:{count_line}: expected 'n_vertices n_faces n_edges' counts, got {rest[:80]!r}"
        )
    nv, nf = int(parts[0]), int(parts[1])
    body, body_no = lines[pos:], numbers[pos:]
    if len(body) != nv + nf:
        raise DataError(
            f"{path}:{count_line}: header says {nv} vertices and {nf} faces ({nv + nf} data lines), "
            f"but the file has {len(body)} data lines"
        )
    vertices = _parse_vertices_text(path, body[:nv], body_no[:nv])
    polys, face_lines = _parse_faces_text(path, body[nv:], body_no[nv:])
    _check_mesh(path, vertices, polys, face_lines)
    faces = _fan(polys) if isinstance(polys, np.ndarray) and nf else _triangulate(list(polys))
    return vertices, faces


def _read_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    fmt, elements, values, line_nos = read_ply_elements(path)
    names = [e["name"] for e in elements]
    if "vertex" not in names or "face" not in names:
        raise DataError(f"{path}: PLY mesh needs 'vertex' and 'face' elements, found {names}")
    vertex_el = elements[names.index("vertex")]
    vprops = dict(vertex_el["props"])
    if not all(isinstance(vprops.get(c), str) for c in "xyz"):
        raise DataError(f"{path}: PLY 'vertex' element needs scalar x, y, z properties")
    face_el = elements[names.index("face")]
    fprop = next((n for n, t in face_el["props"] if n in ("vertex_indices", "vertex_index")), None)
    if fprop is None or isinstance(dict(face_el["props"])[fprop], str):
        raise DataError(f"{path}: PLY 'face' element needs a list property 'vertex_indices'")
    face_lines = line_nos["face"] if line_nos is not None else None
    v = values["vertex"]
    vertices = np.stack([np.asarray(v[c], dtype=np.float64) for c in "xyz"], axis=1)
    polys = values["face"][fprop]
    if isinstance(polys, np.ndarray):
        polys = polys.astype(np.int64).reshape(face_el["count"], -1)
    else:
        polys = [np.asarray(p, dtype=np.int64) for p in polys]
    _check_mesh(path, vertices, polys, face_lines)
    faces = (
        _fan(polys) if isinstance(polys, np.ndarray) and len(polys) else _triangulate(list(polys))
    )
    return vertices, faces


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle mesh from `.off` or `.ply` (ascii / binary little or big endian).

    Polygons are triangulated by fan (v0, vi, vi+1). Handles ModelNet's glued header
    (`OFF<nv> <nf> <ne>` on one line).

    Returns:
        vertices (V, 3) float64 and faces (F, 3) int64.

    Raises:
        DataError naming the file (and line for text formats) for a wrong header, counts that do
        not match the data, out-of-range face indices or non-finite coordinates.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mesh file not found")
    suffix = path.suffix.lower()
    if suffix == ".off":
        vertices, faces = _read_off(path)
    elif suffix == ".ply":
        vertices, faces = _read_ply(path)
    else:
        raise DataError(f"{path}: unknown mesh format {suffix!r}, expected .off or .ply")
    if faces.shape[0] == 0:
        raise DataError(f"{path}: mesh has no faces")
    return vertices, faces


# ----------------------------------------------------------------------------------------------
# Surface sampling
# ----------------------------------------------------------------------------------------------


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre on the centroid and scale so that the farthest point has norm 1 (PointNet++)."""
    points = points - points.mean(axis=0)
    scale = np.linalg.norm(points, axis=1).max()
    return points / scale if scale > 0 else points


def sample_surface(
    vertices: np.ndarray,
    faces: np.ndarray,
    n: int,
    rng: np.random.Generator | int | None = None,
    *,
    normalize: bool = True,
) -> np.ndarray:
    """Sample `n` points uniformly on a triangle mesh surface.

    Triangles are drawn with probability proportional to their area, then a point uniformly
    inside the triangle: p = (1 − √r₁)·a + √r₁(1 − r₂)·b + √r₁·r₂·c, r₁, r₂ ~ U(0, 1).
    With `normalize`, the samples are centred on their centroid and scaled to max norm 1.

    Args:
        vertices: (V, 3) float.
        faces: (F, 3) int vertex indices.
        n: number of points.
        rng: numpy Generator or seed.

    Returns:
        (n, 3) float32.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise ValueError(f"faces must be (F, 3) with F > 0, got {f.shape}")
    if f.min() < 0 or f.max() >= v.shape[0]:
        raise ValueError(f"face indices must be in 0..{v.shape[0] - 1}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]  # (F, 3) each
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)  # (F,)
    total = area.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError(f"mesh has zero or non-finite total surface area ({total})")
    tri = rng.choice(f.shape[0], size=n, p=area / total)  # (n,)
    r1, r2 = rng.random((2, n, 1))
    s = np.sqrt(r1)
    pts = (1 - s) * a[tri] + s * (1 - r2) * b[tri] + s * r2 * c[tri]  # (n, 3)
    if normalize:
        pts = normalize_unit_sphere(pts)
    return pts.astype(np.float32)
