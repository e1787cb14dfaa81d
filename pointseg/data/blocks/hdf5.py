"""Block files: the published `indoor3d_sem_seg_hdf5_data` HDF5 format, read and written.

HDF5 layout (`indoor3d_sem_seg_hdf5_data`, as published): `ply_data_all_<i>.h5` with `data`
[n, 4096, 9] float32 and `label` [n, 4096] uint8, plus `room_filelist.txt` (one
`Area_N_<room>` line per block, in file order). We add an `index` [n, 4096] int32 dataset
(point indices into the cached room), `all_files.txt` and a `manifest.json`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from pointseg.errors import DataError
from pointseg.io import atomic_write

H5_PATTERN = "ply_data_all_*.h5"
_H5_RE = re.compile(r"ply_data_all_(\d+)\.h5$")
MANIFEST_NAME = "manifest.json"


def write_blocks_h5(
    path: str | Path,
    data: np.ndarray,
    label: np.ndarray,
    index: np.ndarray | None = None,
    *,
    compression: str | None = "gzip",
) -> None:
    """Write blocks in the published `ply_data_all_<i>.h5` format (atomically).

    `data` (n, P, 9) float32, `label` (n, P) uint8, optional `index` (n, P) stored as int32.
    One HDF5 chunk per block, so a lazy reader decompresses only the blocks it reads. gzip level
    4 matches PointNet's `data_prep_util.save_h5`.
    """
    import h5py

    data = np.asarray(data, dtype=np.float32)
    label = np.asarray(label)
    if data.ndim != 3:
        raise ValueError(f"write_blocks_h5: data must be (n, P, C), got {data.shape}")
    if label.shape != data.shape[:2]:
        raise ValueError(f"write_blocks_h5: label must be {data.shape[:2]}, got {label.shape}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError("write_blocks_h5: labels must fit in uint8")
    if index is not None:
        index = np.asarray(index)
        if index.shape != data.shape[:2]:
            raise ValueError(f"write_blocks_h5: index must be {data.shape[:2]}, got {index.shape}")
        if index.size and (index.min() < 0 or index.max() > np.iinfo(np.int32).max):
            raise ValueError("write_blocks_h5: index must fit in int32")
    if compression == "gzip":
        opts: dict = {"compression": "gzip", "compression_opts": 4}
    else:
        opts = {"compression": compression} if compression else {}
    n, p, c = data.shape
    arrays = {"data": (data, (1, p, c)), "label": (label.astype(np.uint8), (1, p))}
    if index is not None:
        arrays["index"] = (index.astype(np.int32), (1, p))
    with atomic_write(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            for name, (arr, chunk) in arrays.items():
                f.create_dataset(name, data=arr, chunks=chunk if n else None, **opts)


def read_blocks_h5(path: str | Path) -> dict[str, np.ndarray]:
    """Read one `ply_data_all_<i>.h5` file.

    Returns `{"data": (n, P, C) float32, "label": (n, P) int64-compatible ints, "index": (n, P)
    int64}` (`index` only when present; published files have none). Label dtype is kept as stored
    (uint8 in published files; some copies store int).
    """
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from exc
    with f:
        for key in ("data", "label"):
            if key not in f:
                raise DataError(
                    f"{path}: missing dataset '{key}' (expected 'data' [n,P,9] float32 and "
                    f"'label' [n,P] uint8; found {sorted(f.keys())})"
                )
        out = {"data": np.asarray(f["data"][...], dtype=np.float32), "label": f["label"][...]}
        if "index" in f:
            out["index"] = f["index"][...].astype(np.int64)
    check_block_arrays(path, out)
    return out


def check_block_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    data, label = arrays["data"], arrays["label"]
    if data.ndim != 3:
        raise DataError(f"{path}: 'data' must be [n, P, C], got shape {data.shape}")
    if label.ndim == 3 and label.shape[2] == 1:
        label = arrays["label"] = label[..., 0]
    if label.shape != data.shape[:2]:
        raise DataError(
            f"{path}: 'label' must have shape {data.shape[:2]} to match 'data', got {label.shape}"
        )
    if not np.issubdtype(label.dtype, np.integer):
        if not np.all(np.mod(label, 1) == 0):
            raise DataError(f"{path}: 'label' must hold integer class ids, found {label.dtype}")
        arrays["label"] = label.astype(np.int64)
    if "index" in arrays and arrays["index"].shape != data.shape[:2]:
        raise DataError(f"{path}: 'index' must have shape {data.shape[:2]}")


def list_block_files(folder: str | Path) -> list[Path]:
    """`ply_data_all_<i>.h5` files of a folder in block order (numeric i; `all_files.txt` wins)."""
    folder = Path(folder)
    listing = folder / "all_files.txt"
    if listing.is_file():
        files = []
        for ln, line in enumerate(listing.read_text().splitlines(), 1):
            name = line.strip()
            if not name:
                continue
            f = folder / Path(name).name
            if not f.is_file():
                raise DataError(f"{listing}:{ln}: lists {name}, but {f} does not exist")
            files.append(f)
        return files
    found = [(int(m.group(1)), p) for p in folder.glob(H5_PATTERN) if (m := _H5_RE.search(p.name))]
    return [p for _, p in sorted(found)]


def read_blocks_manifest(folder: str | Path) -> dict | None:
    """The ``manifest.json`` of a block folder written by `make_s3dis_blocks` (``{"params": ...,
    "complete": ..., ...}``), or None when the folder has none or it is not valid JSON (a
    manifest cut short by a crash: the writer then starts afresh)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):  # unreadable, not UTF-8 or not JSON
        return None
    return manifest if isinstance(manifest, dict) else None
