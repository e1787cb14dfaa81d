"""`make_s3dis_blocks`: a room cache → resumable folders of HDF5 blocks (`pointseg blocks s3dis`).

Every room is cut with the recipe of `pointseg.data.blocks.grid` using its own generator keyed
by (seed, area, room name), and the blocks are written ``blocks_per_file`` per HDF5 file in the
published format (`pointseg.data.blocks.hdf5`). ``manifest.json`` records the parameters and,
after every file, where to continue.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pointseg.data.areas import area_number, parse_areas
from pointseg.data.blocks.grid import room_to_blocks
from pointseg.data.blocks.hdf5 import (
    H5_PATTERN,
    MANIFEST_NAME,
    read_blocks_manifest,
    write_blocks_h5,
)
from pointseg.data.s3dis.cache import list_rooms, load_room
from pointseg.errors import DataError
from pointseg.io import atomic_write

MANIFEST_VERSION = 1


def _room_rng(seed: int, area: int, room: str) -> np.random.Generator:
    # Keyed by room name, not position: resuming or selecting other areas reproduces the same
    # blocks for the same room.
    return np.random.default_rng([seed, area, zlib.crc32(room.encode())])


def make_s3dis_blocks(
    cache: str | Path,
    out: str | Path,
    *,
    split: str = "train",
    stride: float | None = None,
    block_size: float = 1.0,
    num_point: int = 4096,
    min_points: int = 100,
    areas: Sequence[int | str] | None = None,
    seed: int = 0,
    blocks_per_file: int = 1000,
    cover_all: bool | None = None,
    centering: str = "points",
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write `<out>/<split>/ply_data_all_<i>.h5` + `room_filelist.txt` from a room cache.

    Args:
        cache: room cache of `pointseg prepare s3dis` (`index.json`, `Area_N/<room>.npz`).
        out: output root; files go to `<out>/<split>/`.
        split: "train" (stride 0.5, random samples) or "test" (stride 1.0, `cover_all`).
        stride: column stride; None = the split's default.
        areas: areas to include (None = every area in the cache; the published files hold all
            six areas and the loader selects by `room_filelist.txt`).
        seed: base seed; every room gets its own generator keyed by (seed, area, room name).
        blocks_per_file: blocks per HDF5 file (1000, as published).
        cover_all: None = True for "test", False for "train".
        overwrite: rewrite a finished or differently-configured output folder.

    Resumable: after every file, `manifest.json` records where to continue; a rerun with the same
    parameters skips finished files (and does nothing when complete).

    Returns the manifest dict (`blocks`, `files`, per-room stats including dropped points).
    """
    from tqdm.auto import tqdm

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    cache, out = Path(cache), Path(out)
    if not (cache / "index.json").is_file():
        raise DataError(
            f"no S3DIS room cache at {cache} (missing {cache / 'index.json'}); "
            f"run `pointseg prepare s3dis --out {cache}` first"
        )
    if stride is None:
        stride = 0.5 if split == "train" else 1.0
    if cover_all is None:
        cover_all = split == "test"
    if blocks_per_file < 1:
        raise ValueError(f"blocks_per_file must be >= 1, got {blocks_per_file}")
    wanted = parse_areas(areas)

    all_rooms = list_rooms(cache)  # sorted naturally by area, room
    rooms = [r for r in all_rooms if wanted is None or area_number(r["area"]) in wanted]
    if not rooms:
        have = sorted({area_number(r["area"]) for r in all_rooms})
        raise DataError(f"{cache}: no rooms in areas {wanted}; the cache holds areas {have}")
    fingerprint = zlib.crc32(
        json.dumps([[r["area"], r["room"], r.get("points")] for r in rooms]).encode()
    )
    params = {
        "split": split,
        "block_size": block_size,
        "stride": stride,
        "num_point": num_point,
        "min_points": min_points,
        "areas": wanted,
        "seed": seed,
        "blocks_per_file": blocks_per_file,
        "cover_all": bool(cover_all),
        "centering": centering,
        "rooms_fingerprint": fingerprint,
    }

    folder = out / split
    manifest_path = folder / MANIFEST_NAME
    manifest = read_blocks_manifest(folder)
    if manifest is not None and manifest.get("params") != params and not overwrite:
        raise DataError(
            f"{folder} holds blocks made with different parameters ({manifest.get('params')}); "
            "pass --overwrite or choose another --out"
        )
    existing = list(folder.glob(H5_PATTERN)) if folder.is_dir() else []
    if manifest is None and existing and not overwrite:
        raise DataError(
            f"{folder} already holds {len(existing)} ply_data_all_*.h5 files not written by this "
            "command; pass --overwrite or choose another --out"
        )
    if manifest is not None and manifest.get("complete"):
        if all((folder / f).is_file() for f in manifest.get("files", [])) and not overwrite:
            return manifest
        manifest = None  # files deleted by hand: start again
    if overwrite or manifest is None or manifest.get("params") != params:
        # Start afresh; the manifest goes first so a crash here never leaves a stale "complete".
        for f in [manifest_path, folder / "room_filelist.txt", folder / "all_files.txt", *existing]:
            f.unlink(missing_ok=True)
        manifest = None

    state = (manifest or {}).get("progress") or {
        "files": [],  # [{"file", "blocks", "rooms": [[name, count], ...]}]
        "next_room": 0,
        "skip": 0,  # blocks of rooms[next_room] already written
        "room_stats": {},
    }
    folder.mkdir(parents=True, exist_ok=True)

    def save_manifest(complete: bool) -> dict:
        m = {
            "version": MANIFEST_VERSION,
            "format": "indoor3d_sem_seg_hdf5_data",
            "cache": str(cache),
            "params": params,
            "complete": complete,
            "blocks": sum(f["blocks"] for f in state["files"]),
            "files": [f["file"] for f in state["files"]],
            "rooms": [state["room_stats"][n] for n in state["room_stats"]],
            "progress": None if complete else state,
        }
        with atomic_write(manifest_path, suffix=".json") as tmp:
            tmp.write_text(json.dumps(m, indent=1))
        return m

    # Pending blocks: list of (room_pos, first block position in room, name, Blocks slice arrays)
    pending: list[tuple[int, int, str, np.ndarray, np.ndarray, np.ndarray]] = []
    pending_n = 0

    def flush(count: int) -> None:
        nonlocal pending_n
        parts, taken, run = [], 0, []
        while taken < count:
            r, start, name, d, lab, idx = pending[0]
            t = min(count - taken, d.shape[0])
            parts.append((d[:t], lab[:t], idx[:t]))
            run.append([name, t])
            if t == d.shape[0]:
                pending.pop(0)
            else:
                pending[0] = (r, start + t, name, d[t:], lab[t:], idx[t:])
            taken += t
        pending_n -= count
        i = len(state["files"])
        fname = f"ply_data_all_{i}.h5"
        write_blocks_h5(
            folder / fname,
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )
        state["files"].append({"file": fname, "blocks": count, "rooms": run})
        if pending:
            state["next_room"], state["skip"] = pending[0][0], pending[0][1]
        else:
            state["next_room"], state["skip"] = current_room + 1, 0
        # Only rooms before next_room are final; a resumed run recomputes next_room's stats.
        state["room_stats"] = {
            k: v for k, v in room_stats_all.items() if v["order"] < state["next_room"]
        }
        save_manifest(complete=False)

    room_stats_all = dict(state["room_stats"])
    start_room, skip = state["next_room"], state["skip"]
    bar = tqdm(
        range(start_room, len(rooms)),
        desc=f"blocks {split}",
        unit="room",
        disable=not progress,
        initial=start_room,
        total=len(rooms),
    )
    current_room = start_room - 1
    for current_room in bar:
        entry = rooms[current_room]
        area = area_number(entry["area"])
        name = f"Area_{area}_{entry['room']}"
        bar.set_postfix_str(name)
        room = load_room(entry["path"])
        b = room_to_blocks(
            room["xyz"],
            room["rgb"],
            room["label"],
            block_size=block_size,
            stride=stride,
            num_point=num_point,
            min_points=min_points,
            rng=_room_rng(seed, area, entry["room"]),
            cover_all=cover_all,
            centering=centering,
        )
        room_stats_all[name] = {
            "order": current_room,
            "room": name,
            "points": int(room["xyz"].shape[0]),
            "blocks": len(b),
            "dropped_blocks": b.dropped_blocks,
            "dropped_points": int(b.dropped_points.size),
        }
        first = skip if current_room == start_room else 0
        if len(b) > first:
            pending.append(
                (current_room, first, name, b.data[first:], b.label[first:], b.index[first:])
            )
            pending_n += len(b) - first
        while pending_n >= blocks_per_file:
            flush(blocks_per_file)
    current_room = len(rooms) - 1
    if pending_n:
        flush(pending_n)
    state["room_stats"] = room_stats_all

    lines = [name for f in state["files"] for name, cnt in f["rooms"] for _ in range(cnt)]
    with atomic_write(folder / "room_filelist.txt", suffix=".txt") as tmp:
        tmp.write_text("".join(f"{ln}\n" for ln in lines))
    with atomic_write(folder / "all_files.txt", suffix=".txt") as tmp:
        tmp.write_text("".join(f"{f['file']}\n" for f in state["files"]))
    return save_manifest(complete=True)
