"""PLY files: one reader and one writer for every command (meshes, point clouds, exports).

The format (Turk 1994; what Open3D, CloudCompare and MeshLab read and write): an ASCII header
(`ply`, `format ascii|binary_little_endian|binary_big_endian 1.0`, then `element <name> <count>`
each followed by its `property <type> <name>` or `property list <count_t> <item_t> <name>` lines,
then `end_header`), then the elements' records in header order.

- :func:`read_ply` reads a point cloud: every scalar property of the `vertex` element, with `x, y,
  z` gathered into `xyz` (in the file's float type, so georeferenced float64 coordinates keep
  their precision) and `red, green, blue` into `rgb` (uint8). Other elements (faces, edges) are
  skipped. Binary files are memory-mapped: only the requested columns are copied.
- :func:`write_ply` writes binary little-endian PLY atomically (temporary file + rename), with
  any number of extra per-vertex scalar properties (`label`, `pred`, `confidence`, ...) in their
  own dtypes.
- :func:`read_ply_elements` is the general parser under both; `pointseg.data.modelnet` uses it
  for meshes.

Every error names the file (and the line, for ASCII data) and what was expected.
"""

from __future__ import annotations

import io
import mmap
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.errors import DataError
from pointseg.io import atomic_write

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def _ply_header(path: Path, raw: bytes) -> tuple[str, list[dict], int, int]:
    """→ (format, elements [{name, count, props: [(name, type) | (name, (count_t, item_t))]}],
    data offset in bytes, number of header lines)."""
    if raw[:3] != b"ply":
        raise DataError(f"{path}:1: expected 'ply' magic line, got {raw[:20]!r}")
    end = re.search(rb"end_header[ \t]*\r?\n", raw[: min(len(raw), 1 << 20)])
    if end is None:
        raise DataError(f"{path}: PLY header has no 'end_header' line")
    header = raw[: end.start()].decode("latin-1").splitlines()
    fmt, elements = None, []
    for ln, line in enumerate(header, 1):
        t = line.split()
        if not t or t[0] in ("ply", "comment", "obj_info"):
            continue
        if t[0] == "format":
            if len(t) < 2 or t[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise DataError(f"{path}:{ln}: unknown PLY format {line!r}")
            fmt = t[1]
        elif t[0] == "element" and len(t) == 3 and t[2].isdigit():
            elements.append({"name": t[1], "count": int(t[2]), "props": []})
        elif t[0] == "property" and elements:
            if len(t) == 5 and t[1] == "list" and t[2] in _PLY_TYPES and t[3] in _PLY_TYPES:
                elements[-1]["props"].append((t[4], (_PLY_TYPES[t[2]], _PLY_TYPES[t[3]])))
            elif len(t) == 3 and t[1] in _PLY_TYPES:
                elements[-1]["props"].append((t[2], _PLY_TYPES[t[1]]))
            else:
                raise DataError(f"{path}:{ln}: cannot parse PLY property line {line!r}")
        else:
            raise DataError(f"{path}:{ln}: unexpected PLY header line {line!r}")
    if fmt is None:
        raise DataError(f"{path}: PLY header has no 'format' line")
    return fmt, elements, end.end(), len(header) + 1


def _read_binary_element(
    path: Path, raw: bytes, offset: int, el: dict, endian: str
) -> tuple[dict[str, np.ndarray | list[np.ndarray]], int]:
    count, props = el["count"], el["props"]

    def need(nbytes: int, at: int) -> None:
        if at + nbytes > len(raw):
            raise DataError(
                f"{path}: file ends inside element '{el['name']}' (header says {count} records)"
            )

    if count == 0:
        return {name: np.zeros(0) for name, _ in props}, offset
    if all(isinstance(t, str) for _, t in props):
        dt = np.dtype([(name, endian + t) for name, t in props])
        need(dt.itemsize * count, offset)
        arr = np.frombuffer(raw, dtype=dt, count=count, offset=offset)
        return {name: arr[name] for name, _ in props}, offset + dt.itemsize * count

    # Fast path: every list has the length of the first record's (e.g. all triangles).
    fields, at = [], offset
    for name, t in props:
        if isinstance(t, str):
            fields.append((name, endian + t))
            at += np.dtype(t).itemsize
        else:
            need(np.dtype(t[0]).itemsize, at)
            n = int(np.frombuffer(raw, dtype=endian + t[0], count=1, offset=at)[0])
            fields.append((name + "__n", endian + t[0]))
            fields.append((name, endian + t[1], (n,)))
            at += np.dtype(t[0]).itemsize + n * np.dtype(t[1]).itemsize
    dt = np.dtype(fields)
    if offset + dt.itemsize * count <= len(raw):
        arr = np.frombuffer(raw, dtype=dt, count=count, offset=offset)
        lists = [(name, f) for name, f, *shape in fields if shape]
        if all((arr[name + "__n"] == arr.dtype[name].shape[0]).all() for name, _ in lists):
            return {name: arr[name] for name, _ in props}, offset + dt.itemsize * count

    # Slow path: mixed polygon sizes; walk record by record.
    out: dict[str, list] = {name: [] for name, _ in props}
    at = offset
    for _ in range(count):
        for name, t in props:
            if isinstance(t, str):
                size = np.dtype(t).itemsize
                need(size, at)
                out[name].append(np.frombuffer(raw, dtype=endian + t, count=1, offset=at)[0])
                at += size
            else:
                cs, isz = np.dtype(t[0]).itemsize, np.dtype(t[1]).itemsize
                need(cs, at)
                n = int(np.frombuffer(raw, dtype=endian + t[0], count=1, offset=at)[0])
                need(n * isz, at + cs)
                out[name].append(np.frombuffer(raw, dtype=endian + t[1], count=n, offset=at + cs))
                at += cs + n * isz
    res = {
        name: (np.asarray(v) if isinstance(t, str) else v)
        for (name, t), v in zip(props, out.values(), strict=True)
    }
    return res, at


def _read_ascii_elements(
    path: Path, raw: bytes, offset: int, elements: list[dict], header_lines: int
) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """→ element name → {prop → array | list}, element name → (count,) line numbers."""
    lines = raw[offset:].decode("latin-1").splitlines()
    rows = [(i + header_lines + 1, ln.strip()) for i, ln in enumerate(lines) if ln.strip()]
    out, line_nos, at = {}, {}, 0
    for el in elements:
        recs = rows[at : at + el["count"]]
        if len(recs) < el["count"]:
            raise DataError(
                f"{path}: header says {el['count']} '{el['name']}' records, file has only {len(recs)}"
            )
        at += el["count"]
        cols: dict[str, list] = {name: [] for name, _ in el["props"]}
        for ln, text in recs:
            tok, k = text.split(), 0
            try:
                for name, t in el["props"]:
                    if isinstance(t, str):
                        cols[name].append(float(tok[k]))
                        k += 1
                    else:
                        n = int(tok[k])
                        if len(tok) < k + 1 + n:
                            raise DataError(
                                f"{path}:{ln}: list says {n} items but lists {len(tok) - k - 1}"
                            )
                        cols[name].append(np.array(tok[k + 1 : k + 1 + n], dtype=np.int64))
                        k += 1 + n
            except (IndexError, ValueError):
                raise DataError(
                    f"{path}:{ln}: expected {len(el['props'])} '{el['name']}' properties, got {text[:80]!r}"
                ) from None
        out[el["name"]] = {
            name: (np.asarray(v, dtype=np.float64) if isinstance(t, str) else v)
            for (name, t), v in zip(el["props"], cols.values(), strict=True)
        }
        line_nos[el["name"]] = np.array([ln for ln, _ in recs], dtype=np.int64)
    if at < len(rows):
        raise DataError(f"{path}:{rows[at][0]}: unexpected data after the last element")
    return out, line_nos


# numpy dtype kind+size -> PLY type name, for writing
_WRITE_TYPES = {
    "i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort",
    "i4": "int", "u4": "uint", "f4": "float", "f8": "double",
}  # fmt: skip


def _open_raw(path: Path) -> Any:
    """The file's bytes: memory-mapped (binary data is viewed, not copied); b"" for an empty file."""
    if not path.is_file():
        raise DataError(f"{path}: PLY file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty, expected a PLY header starting with 'ply'")
    with open(path, "rb") as fh:
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


def read_ply_elements(
    path: str | os.PathLike,
) -> tuple[str, list[dict], dict[str, dict[str, Any]], dict[str, np.ndarray] | None]:
    """Parse every element of a PLY file.

    Returns:
        (format, header elements [{name, count, props}], element name -> {property -> values},
        element name -> line numbers of its records for ASCII files, else None). Scalar
        properties are 1-D arrays (binary: views into the mapped file in the declared dtype;
        ASCII: float64); list properties are (count, L) arrays or lists of arrays.
    """
    path = Path(path)
    raw = _open_raw(path)
    fmt, elements, offset, header_lines = _ply_header(path, raw)
    if fmt == "ascii":
        values, line_nos = _read_ascii_elements(path, raw[:], offset, elements, header_lines)
        return fmt, elements, values, line_nos
    endian = "<" if fmt == "binary_little_endian" else ">"
    values = {}
    for el in elements:
        values[el["name"]], offset = _read_binary_element(path, raw, offset, el, endian)
    return fmt, elements, values, None


def _read_ascii_vertices(path: Path, raw: Any, offset: int, el: dict) -> dict[str, np.ndarray]:
    """Fast path for ASCII clouds whose first element is an all-scalar `vertex` (pandas' C reader)."""
    import pandas as pd

    names = [name for name, _ in el["props"]]
    try:
        frame = pd.read_csv(
            io.BytesIO(raw[offset:]), sep=r"\s+", header=None, nrows=el["count"],
            names=names, dtype=np.float64, engine="c", comment=None,
        )  # fmt: skip
    except (ValueError, pd.errors.ParserError):
        return {}  # let the exact reader find the bad line
    if len(frame) < el["count"] or frame.isna().to_numpy().any():
        return {}
    return {name: frame[name].to_numpy() for name in names}


def read_ply(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a PLY point cloud (or the vertices of a mesh).

    Returns:
        ``{"xyz": (N, 3) float32|float64, "rgb": (N, 3) uint8 (when red/green/blue exist),
        <other vertex property>: (N,) array, ...}``. Coordinates keep the file's float type
        (float32 for integer coordinates); ASCII properties declared as integers come back as
        integers.

    Raises:
        DataError naming the file: not a PLY, no `vertex` element, no x/y/z, truncated data.
    """
    path = Path(path)
    raw = _open_raw(path)
    fmt, elements, offset, header_lines = _ply_header(path, raw)
    names = [e["name"] for e in elements]
    if "vertex" not in names:
        raise DataError(f"{path}: PLY has no 'vertex' element (elements: {names or 'none'})")
    el = elements[names.index("vertex")]
    props = dict(el["props"])
    missing = [c for c in "xyz" if not isinstance(props.get(c), str)]
    if missing:
        raise DataError(
            f"{path}: PLY 'vertex' element has no scalar {', '.join(missing)} coordinates "
            f"(properties: {[n for n, _ in el['props']]})"
        )
    vertex: dict[str, Any] = {}
    if fmt == "ascii" and names[0] == "vertex" and all(isinstance(t, str) for t in props.values()):
        vertex = _read_ascii_vertices(path, raw, offset, el)
    if not vertex:
        vertex = read_ply_elements(path)[2]["vertex"]
    out: dict[str, np.ndarray] = {}
    xyz_t = np.result_type(*[np.dtype(props[c]) for c in "xyz"])
    xyz_t = xyz_t if xyz_t.kind == "f" else np.dtype(np.float32)
    out["xyz"] = np.stack([np.asarray(vertex[c], dtype=xyz_t) for c in "xyz"], axis=1)
    if all(isinstance(props.get(c), str) for c in ("red", "green", "blue")):
        rgb = np.stack([np.asarray(vertex[c]) for c in ("red", "green", "blue")], axis=1)
        if rgb.dtype.kind == "f" and rgb.size and rgb.max() <= 1.0:
            rgb = rgb * 255.0  # float colours in [0, 1] (Open3D's convention)
        out["rgb"] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    for name, t in el["props"]:
        if name in ("x", "y", "z", "red", "green", "blue") or not isinstance(t, str):
            continue
        out[name] = np.array(vertex[name], dtype=t)  # copy: detach from the mapped file
    return out


def write_ply(
    path: str | os.PathLike,
    xyz: np.ndarray,
    *,
    rgb: np.ndarray | None = None,
    comments: tuple[str, ...] = (),
    **props: np.ndarray,
) -> None:
    """Write a binary little-endian PLY point cloud atomically.

    Args:
        xyz: (N, 3) coordinates; float64 stays double, anything else is written as float.
        rgb: optional (N, 3) uint8 colours (`red`, `green`, `blue` uchar).
        comments: header comment lines (e.g. the class names of `label`).
        **props: extra per-vertex scalar properties, each (N,), written in its own dtype
            (int64 -> int, bool -> uchar, float64 -> double ...).
    """
    path = Path(path)
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"write_ply({path}): xyz must be (N, 3), got {xyz.shape}")
    n = xyz.shape[0]
    xyz_t = "f8" if xyz.dtype == np.float64 else "f4"
    fields: list[tuple[str, str]] = [(c, "<" + xyz_t) for c in "xyz"]
    columns: list[np.ndarray] = [xyz[:, 0], xyz[:, 1], xyz[:, 2]]
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != (n, 3):
            raise ValueError(f"write_ply({path}): rgb must be ({n}, 3), got {rgb.shape}")
        fields += [("red", "<u1"), ("green", "<u1"), ("blue", "<u1")]
        columns += [rgb[:, 0], rgb[:, 1], rgb[:, 2]]
    for name, values in props.items():
        values = np.asarray(values)
        if values.shape != (n,):
            raise ValueError(
                f"write_ply({path}): property {name!r} must be ({n},), got {values.shape}"
            )
        if values.dtype == np.bool_:
            t = "u1"
        elif values.dtype.kind in "iu":
            t = f"{values.dtype.kind}{min(values.dtype.itemsize, 4)}"
        elif values.dtype.kind == "f":
            t = "f8" if values.dtype.itemsize == 8 else "f4"
        else:
            raise ValueError(
                f"write_ply({path}): property {name!r} has unsupported dtype {values.dtype}"
            )
        fields.append((name, "<" + t))
        columns.append(values)
    record = np.empty(n, dtype=np.dtype(fields))
    for (name, _), col in zip(fields, columns, strict=True):
        record[name] = col
    header = ["ply", "format binary_little_endian 1.0"]
    header += [f"comment {c}" for c in comments]
    header.append(f"element vertex {n}")
    header += [f"property {_WRITE_TYPES[t[1:]]} {name}" for name, t in fields]
    header.append("end_header")
    with atomic_write(path, suffix=".ply") as tmp, open(tmp, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        record.tofile(fh)
