"""The canonical S3DIS room cache, written by `prepare_s3dis` and read by everyone else.

- ``<out>/Area_N/<room>.npz``: ``xyz`` float32 (n, 3), ``rgb`` uint8 (n, 3), ``label`` uint8 (n,),
  ``instance`` int32 (n,).
- ``<out>/index.json``: ``{"version": 1, "classes": [...], "rooms": [{"area", "room", "file",
  "points", "histogram", ...}]}``; each room entry also records the npz size and sha256 (resume
  verification), the source fingerprint and the room's parse issues.
- ``<out>/prepare_report.jsonl``: one JSON object per issue (file, line, raw bytes, action).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pointseg.data.areas import natural_key, normalize_area
from pointseg.errors import DataError
from pointseg.io import atomic_write

if TYPE_CHECKING:
    from pointseg.data.s3dis.room import RoomData

INDEX_VERSION = 1
INDEX_NAME = "index.json"
REPORT_NAME = "prepare_report.jsonl"
CACHE_KEYS = ("xyz", "rgb", "label", "instance")


def save_room(path: str | os.PathLike, room: RoomData) -> None:
    """Write the canonical ``.npz`` atomically (uncompressed: loading is memory-speed)."""
    with atomic_write(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        # A file object, not a path: np.savez would append ".npz" to the temp name.
        np.savez(fh, xyz=room.xyz, rgb=room.rgb, label=room.label, instance=room.instance)


_EXPECTED = {
    "xyz": (np.float32, 2),
    "rgb": (np.uint8, 2),
    "label": (np.uint8, 1),
    "instance": (np.int32, 1),
}


def load_room(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a cached room: ``{"xyz" float32 (n,3), "rgb" uint8 (n,3), "label" uint8 (n,),
    "instance" int32 (n,)}``. Raises DataError naming the file and the bad array."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except Exception as exc:  # zip / format errors: a damaged cache file
        raise DataError(
            f"{path}: not a readable room cache ({exc}); rerun `pointseg prepare s3dis --force`"
        ) from exc
    missing = [k for k in CACHE_KEYS if k not in data]
    if missing:
        raise DataError(f"{path}: room cache lacks {missing}; expected keys {list(CACHE_KEYS)}")
    n = data["xyz"].shape[0]
    for key, (dtype, ndim) in _EXPECTED.items():
        arr = data[key]
        shape_ok = arr.ndim == ndim and arr.shape[0] == n and (ndim == 1 or arr.shape[1] == 3)
        if arr.dtype != dtype or not shape_ok:
            want = f"({n}, 3)" if ndim == 2 else f"({n},)"
            raise DataError(
                f"{path}: array {key!r} is {arr.dtype} {arr.shape}, expected {np.dtype(dtype)} {want}"
            )
    return data


def read_index(root: str | os.PathLike) -> dict[str, Any]:
    """Read ``<root>/index.json`` written by :func:`prepare_s3dis`."""
    path = Path(root) / INDEX_NAME
    if not path.is_file():
        raise DataError(
            f"{path}: no room index; run `pointseg prepare s3dis --raw <...> --out {root}` first"
        )
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); rerun `pointseg prepare s3dis`") from exc
    if not isinstance(index, dict) or index.get("version") != INDEX_VERSION or "rooms" not in index:
        raise DataError(f"{path}: not a version-{INDEX_VERSION} S3DIS room index")
    return index


def list_rooms(
    root: str | os.PathLike, areas: Iterable[int | str] | None = None
) -> list[dict[str, Any]]:
    """Index entries of the cached rooms (optionally only ``areas``), sorted by area and room.

    Each entry is the ``index.json`` record plus ``"path"``: the absolute path of its ``.npz``.
    """
    root = Path(root)
    index = read_index(root)
    wanted = None if areas is None else {normalize_area(a) for a in areas}
    rooms = []
    for entry in index["rooms"]:
        if wanted is not None and entry["area"] not in wanted:
            continue
        rooms.append({**entry, "path": str((root / entry["file"]).resolve())})
    rooms.sort(key=lambda e: (natural_key(e["area"]), natural_key(e["room"])))
    return rooms
