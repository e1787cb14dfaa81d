"""Read any point-cloud file into ``xyz`` (+ ``rgb``, + ``label`` when it has them).

Formats (by extension; `read_point_cloud(path, reader=...)` can force one):

- ``.ply`` — :func:`pointseg.data.ply.read_ply` (ASCII / binary, the project's one PLY reader).
- ``.txt``, ``.asc`` and, without Open3D, ``.xyz``, ``.pts``, ``.xyzrgb`` — the plain reader:
  whitespace-separated ``x y z``, ``x y z r g b``, ``x y z i`` or ``x y z i r g b`` per line
  (``i``: intensity, dropped), an optional PTS point-count first line, ``#`` comments. Needs
  nothing but numpy (pandas' C reader when installed: ~100 MB/s; numpy ``loadtxt`` otherwise).
  A bad line (wrong field count, not a number, NaN/inf) is reported as ``file:line`` with the
  line; ``on_bad_line="skip"`` drops such lines and counts them, ``"stop"`` raises.
- ``.pcd`` and, with Open3D installed, ``.xyz``, ``.pts``, ``.xyzrgb`` — Open3D's readers
  (imported on use; `pip install open3d-cpu`).
- ``.npz`` — arrays ``xyz`` | ``points`` | ``coord`` | ``pos`` (N, 3+) and optionally ``rgb`` |
  ``colors`` | ``color`` (N, 3) and ``label`` (N,); a (N, 6+) ``points`` array carries colour in
  columns 3:6. pointseg's room cache files are read as they are.
- A folder holding ``Annotations/`` — a raw S3DIS room (`pointseg.data.s3dis.parse_room`,
  with its ground-truth labels).

Colours come back as uint8 0..255 (float colours in [0, 1] are scaled). Every error is a
``DataError`` naming the file: empty file, no points, non-finite coordinates, unknown extension.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pointseg.errors import DataError

__all__ = [
    "PointCloud",
    "SUFFIXES",
    "TEXT_SUFFIXES",
    "OPEN3D_SUFFIXES",
    "read_point_cloud",
    "read_text_cloud",
    "is_point_cloud_path",
]

TEXT_SUFFIXES = (".txt", ".asc", ".xyz", ".pts", ".xyzrgb")
OPEN3D_SUFFIXES = (".pcd", ".xyz", ".pts", ".xyzrgb")
SUFFIXES = (".ply", ".npz", ".pcd", *TEXT_SUFFIXES)
_TEXT_LAYOUTS = {3: "x y z", 4: "x y z i", 6: "x y z r g b", 7: "x y z i r g b"}
_MAX_REPORTED = 20


@dataclass
class PointCloud:
    """A point cloud read from `source`.

    Attributes:
        xyz: (n, 3) float32 or float64 coordinates (the file's precision).
        rgb: (n, 3) uint8 colours, or None when the file has none.
        label: (n,) int ground-truth labels when the file carries them (S3DIS rooms, cache npz).
        reader: which reader was used ("ply", "plain text", "open3d", "npz", "s3dis room").
        notes: what the reader did that the user should know (skipped lines, scaled colours).
    """

    xyz: np.ndarray
    rgb: np.ndarray | None
    source: str
    reader: str
    label: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


def is_point_cloud_path(path: Path) -> bool:
    return (path.is_file() and path.suffix.lower() in SUFFIXES) or (
        path.is_dir() and (path / "Annotations").is_dir()
    )


def _have_open3d() -> bool:
    import importlib.util

    return importlib.util.find_spec("open3d") is not None


def _colours(rgb: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return rgb
    rgb = rgb.astype(np.float64)
    if not np.isfinite(rgb).all():
        raise DataError(f"{path}: colours contain NaN or inf")
    if rgb.size and rgb.max() <= 1.0:
        notes.append("colours in [0, 1] scaled to 0..255")
        rgb = rgb * 255.0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _finite(
    path: Path, xyz: np.ndarray, rest: list, on_bad_line: str, notes: list[str]
) -> tuple[np.ndarray, list]:
    """Drop (skip) or refuse (stop) points with NaN / inf coordinates."""
    ok = np.isfinite(xyz).all(axis=1)
    if ok.all():
        return xyz, rest
    bad = np.flatnonzero(~ok)
    if on_bad_line != "skip" or bad.size == len(xyz):
        raise DataError(
            f"{path}: {bad.size:,} of {len(xyz):,} points have NaN or infinite coordinates "
            f"(first: point {int(bad[0])}, {xyz[bad[0]].tolist()})"
            + ("" if bad.size == len(xyz) else "; pass --on-bad-line skip to drop them")
        )
    notes.append(f"skipped {bad.size:,} points with NaN or infinite coordinates")
    return xyz[ok], [None if r is None else r[ok] for r in rest]


# ------------------------------------------------------------------------------ plain text
_PTS_COUNT = re.compile(rb"^\s*\d+\s*$")


def _fast_text(buf: bytes) -> np.ndarray | None:
    """All rows as float64 (rows, cols) when every line is clean, else None."""
    try:
        import pandas as pd
    except ImportError:  # numpy only
        try:
            with np.errstate(all="ignore"):
                arr = np.loadtxt(io.BytesIO(buf), dtype=np.float64, comments="#", ndmin=2)
        except ValueError:
            return None
        return arr
    try:
        frame = pd.read_csv(
            io.BytesIO(buf), sep=r"\s+", header=None, comment="#", dtype=np.float64,
            engine="c", na_filter=False, skip_blank_lines=True,
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    return frame.to_numpy()


def read_text_cloud(path: str | os.PathLike, on_bad_line: str = "stop") -> PointCloud:
    """The plain reader: whitespace-separated ``x y z [i] [r g b]`` lines (module docstring)."""
    if on_bad_line not in ("skip", "stop"):
        raise ValueError(f"on_bad_line must be 'skip' or 'stop', got {on_bad_line!r}")
    path = Path(path)
    buf = path.read_bytes()
    notes: list[str] = []
    first_line = 1
    nl = buf.find(b"\n")
    head = buf[: nl if nl >= 0 else len(buf)]
    if _PTS_COUNT.match(head) and len(buf) > len(head) + 1:
        notes.append(f"first line {head.strip().decode()!r} read as a PTS point count")
        buf, first_line = buf[nl + 1 :], 2
    if not buf.strip():
        raise DataError(f"{path}: file is empty (expected 'x y z [r g b]' lines)")
    arr = _fast_text(buf)
    if arr is not None and arr.shape[1] in _TEXT_LAYOUTS and np.isfinite(arr).all():
        cols = arr.shape[1]
    else:
        arr, cols = _slow_text(path, buf, first_line, on_bad_line, notes)
    xyz = np.ascontiguousarray(arr[:, :3])
    rgb = None
    if cols >= 6:
        rgb = _colours(arr[:, cols - 3 :], path, notes)
    if cols in (4, 7):
        notes.append("intensity column dropped")
    if cols != 3 and cols != 6 and cols not in _TEXT_LAYOUTS:  # pragma: no cover - guarded above
        raise DataError(f"{path}: unexpected {cols} columns")
    return PointCloud(xyz=xyz, rgb=rgb, source=str(path), reader="plain text", notes=notes)


def _slow_text(
    path: Path, buf: bytes, first_line: int, on_bad_line: str, notes: list[str]
) -> tuple[np.ndarray, int]:
    """Line by line: find, report and (with skip) drop the bad lines."""
    rows: list[list[float]] = []
    cols = None
    bad: list[tuple[int, str, bytes]] = []
    for ln, line in enumerate(buf.splitlines(), first_line):
        text = line.split(b"#", 1)[0].strip()
        if not text:
            continue
        fields = text.split()
        why = None
        if len(fields) not in _TEXT_LAYOUTS:
            why = f"{len(fields)} fields, expected 3 (x y z), 4 (x y z i), 6 (x y z r g b) or 7"
        elif cols is not None and len(fields) != cols:
            why = f"{len(fields)} fields where the file has {cols} ({_TEXT_LAYOUTS[cols]})"
        else:
            try:
                vals = [float(f) for f in fields]
            except ValueError:
                why = "not a number"
            else:
                if not all(np.isfinite(vals)):
                    why = "NaN or infinite value"
        if why is None:
            cols = len(fields) if cols is None else cols
            rows.append(vals)
            continue
        if on_bad_line == "stop":
            raw = line[:120].decode("latin-1")
            raise DataError(
                f"{path}:{ln}: bad line ({why}): {raw!r}; pass --on-bad-line skip to drop bad lines"
            )
        bad.append((ln, why, line[:120]))
    if bad:
        shown = "; ".join(f"line {ln}: {why}" for ln, why, _ in bad[:_MAX_REPORTED])
        more = f" (+{len(bad) - _MAX_REPORTED} more)" if len(bad) > _MAX_REPORTED else ""
        notes.append(f"skipped {len(bad)} bad lines of {path}: {shown}{more}")
    if not rows:
        raise DataError(f"{path}: no valid 'x y z [r g b]' line")
    return np.asarray(rows, dtype=np.float64), int(cols)


# ------------------------------------------------------------------------------ other formats
def _read_open3d(path: Path) -> PointCloud:
    try:
        import open3d as o3d
    except ImportError as exc:
        raise DataError(
            f"{path}: reading {path.suffix} files needs Open3D (`pip install open3d-cpu`); "
            "or convert it to PLY / 'x y z r g b' text"
        ) from exc
    pcd = o3d.io.read_point_cloud(str(path), format="auto", print_progress=False)
    xyz = np.asarray(pcd.points, dtype=np.float64)
    if len(xyz) == 0:
        raise DataError(f"{path}: no points (Open3D read none: empty or unreadable file)")
    rgb = np.asarray(pcd.colors) if pcd.has_colors() else None
    notes: list[str] = []
    return PointCloud(
        xyz=xyz,
        rgb=None if rgb is None else _colours(rgb, path, notes),
        source=str(path),
        reader="open3d",
        notes=notes,
    )


def _pick(arrays: dict, names: tuple[str, ...]) -> np.ndarray | None:
    for n in names:
        if n in arrays:
            return arrays[n]
    return None


def _read_npz(path: Path) -> PointCloud:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    pts = _pick(arrays, ("xyz", "points", "coord", "pos"))
    if pts is None:
        raise DataError(
            f"{path}: no point array; expected one of xyz, points, coord, pos (found {sorted(arrays)})"
        )
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise DataError(f"{path}: point array has shape {pts.shape}, expected (N, 3) or (N, 6+)")
    notes: list[str] = []
    rgb = _pick(arrays, ("rgb", "colors", "color"))
    if rgb is None and pts.shape[1] >= 6:
        rgb = pts[:, 3:6]
    if rgb is not None:
        if rgb.shape != (len(pts), 3):
            raise DataError(f"{path}: colours have shape {rgb.shape}, expected ({len(pts)}, 3)")
        rgb = _colours(rgb, path, notes)
    xyz = np.ascontiguousarray(pts[:, :3])
    if xyz.dtype.kind != "f":
        xyz = xyz.astype(np.float64)
    label = arrays.get("label")
    if label is not None and label.shape != (len(xyz),):
        label = None
    return PointCloud(xyz=xyz, rgb=rgb, source=str(path), reader="npz", label=label, notes=notes)


def _read_ply_cloud(path: Path) -> PointCloud:
    from pointseg.data.ply import read_ply

    d = read_ply(path)
    label = d.get("label")
    return PointCloud(
        xyz=d["xyz"],
        rgb=d.get("rgb"),
        source=str(path),
        reader="ply",
        label=label if label is not None and label.dtype.kind in "iu" else None,
    )


def _read_room(path: Path) -> PointCloud:
    from pointseg.data.s3dis import parse_room

    room, issues = parse_room(path)
    notes = [f"{len(issues)} parse issues (first: {issues[0]})"] if issues else []
    return PointCloud(
        xyz=room.xyz, rgb=room.rgb, source=str(path), reader="s3dis room", label=room.label,
        notes=notes,
    )  # fmt: skip


def read_point_cloud(
    path: str | os.PathLike, *, reader: str = "auto", on_bad_line: str = "stop"
) -> PointCloud:
    """Read one point-cloud file or S3DIS room folder (module docstring).

    Args:
        reader: "auto" (by extension), "plain" (the text reader) or "open3d".
        on_bad_line: text files — "stop" at the first bad line, or "skip" bad lines; every
            format — "skip" also drops points with non-finite coordinates.

    Raises:
        DataError naming the file: not found, unknown extension, empty, no points, NaN
        coordinates (with "stop"), bad line (with "stop").
    """
    path = Path(path)
    if reader not in ("auto", "plain", "open3d"):
        raise ValueError(f"reader must be auto, plain or open3d, got {reader!r}")
    if path.is_dir():
        if not (path / "Annotations").is_dir():
            raise DataError(
                f"{path}: a folder but not an S3DIS room (no Annotations/ inside); pass a file, "
                "a room folder, or a folder of point-cloud files"
            )
        cloud = _read_room(path)
    else:
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty")
        suffix = path.suffix.lower()
        if reader == "plain":
            cloud = read_text_cloud(path, on_bad_line)
        elif reader == "open3d" or suffix == ".pcd":
            cloud = _read_open3d(path)
        elif suffix == ".ply":
            cloud = _read_ply_cloud(path)
        elif suffix == ".npz":
            cloud = _read_npz(path)
        elif suffix in OPEN3D_SUFFIXES and _have_open3d():
            cloud = _read_open3d(path)
        elif suffix in TEXT_SUFFIXES:
            cloud = read_text_cloud(path, on_bad_line)
        else:
            raise DataError(
                f"{path}: unknown point-cloud extension {path.suffix!r}; supported: "
                f"{', '.join(SUFFIXES)} and S3DIS room folders (or force the text reader "
                "with --reader plain)"
            )
    if len(cloud.xyz) == 0:
        raise DataError(f"{path}: the file holds no points")
    xyz, (rgb, label) = _finite(path, cloud.xyz, [cloud.rgb, cloud.label], on_bad_line, cloud.notes)
    cloud.xyz, cloud.rgb, cloud.label = xyz, rgb, label
    return cloud
