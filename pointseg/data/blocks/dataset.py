"""`S3DISBlocks`: the torch Dataset of S3DIS blocks, from our block folders or the published files.

Selects blocks by area through ``room_filelist.txt`` (the Area-5 protocol: ``areas=[5]`` to test,
``exclude_areas=[5]`` to train), in memory or read lazily block by block.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pointseg.data.areas import area_of_room, parse_areas
from pointseg.data.augment import BlockAugment
from pointseg.data.blocks.hdf5 import check_block_arrays, list_block_files, read_blocks_h5
from pointseg.data.s3dis.classes import NUM_CLASSES
from pointseg.errors import DataError


def _block_folder(root: Path, split: str) -> Path:
    for cand in (root / split, root):
        if cand.is_dir() and list_block_files(cand):
            return cand
    raise DataError(
        f"no ply_data_all_*.h5 files in {root / split} or {root}: expected S3DIS blocks made by "
        "`pointseg blocks s3dis` (<root>/<split>/) or the published indoor3d_sem_seg_hdf5_data folder"
    )


class S3DISBlocks(Dataset):
    """S3DIS blocks from a folder of `ply_data_all_*.h5` + `room_filelist.txt`.

    Works on our own output (`<root>/<split>/`) and on the published `indoor3d_sem_seg_hdf5_data`
    folder (`<root>` itself). The published files hold every area; select the test area with
    `areas=[5]` and train on the rest with `exclude_areas=[5]` (the Area-5 protocol). The
    selection may be empty (check `len`).

    Memory: with `in_memory=True` (default) the selected blocks are loaded once — the whole
    published set is 23,585 blocks × 4096 × 9 float32 ≈ 3.5 GB. `in_memory=False` keeps only
    labels (1 byte per point) and reads each block from its file on access (our files store
    one HDF5 chunk per block, so this decompresses only that block).

    Item: `(points (P, 9) float32 tensor, label (P,) int64 tensor)`.

    Attributes:
        rooms: room name (`Area_N_<room>`) per selected block ("" if no room_filelist.txt).
        index: (n, P) int64 point indices in the room per block, or None (published files).
        labels: (n, P) uint8 labels of the selected blocks.
        files: the HDF5 files read.
    """

    def __init__(
        self,
        root: str | Path,
        areas: Iterable[int | str] | None = None,
        *,
        exclude_areas: Iterable[int | str] | None = None,
        split: str = "train",
        augment: BlockAugment | None = None,
        num_classes: int = NUM_CLASSES,
        in_memory: bool = True,
    ) -> None:
        import h5py

        if not 0 < num_classes <= 256:
            raise ValueError(f"num_classes must be in 1..256, got {num_classes}")
        self.folder = _block_folder(Path(root), split)
        self.files = list_block_files(self.folder)
        self.augment = augment
        self.num_classes = num_classes
        self.in_memory = in_memory
        areas_in, areas_out = parse_areas(areas), parse_areas(exclude_areas)

        # Pass 1: block counts per file (cheap: HDF5 metadata only).
        sizes = []
        for f in self.files:
            try:
                with h5py.File(f, "r") as h:
                    if "data" not in h or "label" not in h:
                        raise DataError(
                            f"{f}: missing dataset 'data' or 'label' (found {sorted(h.keys())}); "
                            "expected the indoor3d_sem_seg_hdf5_data format"
                        )
                    sizes.append(int(h["data"].shape[0]))
            except OSError as exc:
                raise DataError(f"{f}: not a readable HDF5 file ({exc})") from exc
        total = sum(sizes)
        filelist = self.folder / "room_filelist.txt"
        selecting = areas_in is not None or areas_out is not None
        if filelist.is_file():
            names = [ln.strip() for ln in filelist.read_text().splitlines() if ln.strip()]
            if len(names) != total:
                raise DataError(
                    f"{filelist} has {len(names)} lines but the {len(self.files)} HDF5 files in "
                    f"{self.folder} hold {total} blocks (one line per block expected)"
                )
        elif selecting:
            raise DataError(
                f"{filelist} is missing: it is needed to select blocks by area "
                "(one 'Area_N_<room>' line per block)"
            )
        else:
            names = [""] * total
        keep = np.ones(total, dtype=bool)
        if selecting:
            try:
                block_area = np.array([area_of_room(n) for n in names])
            except ValueError as exc:
                raise DataError(f"{filelist}: {exc}") from exc
            if areas_in is not None:
                keep &= np.isin(block_area, areas_in)
            if areas_out is not None:
                keep &= ~np.isin(block_area, areas_out)

        # Pass 2: the selected blocks of each file.
        data, labels, index, rows = [], [], [], []
        offset, shape = 0, None
        for fi, (f, n) in enumerate(zip(self.files, sizes, strict=True)):
            sel = np.flatnonzero(keep[offset : offset + n])
            offset += n
            if in_memory:
                part = read_blocks_h5(f)
            else:
                with h5py.File(f, "r") as h:
                    part = {"data": np.empty((n, *h["data"].shape[1:]), np.float32)}  # shape only
                    part["label"] = h["label"][...]
                    if "index" in h:
                        part["index"] = h["index"][...].astype(np.int64)
                check_block_arrays(f, part)
            if shape is None:
                shape = part["data"].shape[1:]
            elif part["data"].shape[1:] != shape:
                raise DataError(
                    f"{f}: blocks of shape {part['data'].shape[1:]}, but {self.files[0]} has {shape}"
                )
            lab = part["label"]
            bad = (lab < 0) | (lab >= num_classes)
            if bad.any():
                b = int(np.flatnonzero(bad.any(axis=1))[0])
                raise DataError(
                    f"{f}: label out of range 0..{num_classes - 1} "
                    f"(block {b} holds {lab[b][bad[b]][0]})"
                )
            labels.append(lab[sel].astype(np.uint8))
            index.append(part["index"][sel] if "index" in part else None)
            if in_memory:
                data.append(part["data"][sel])
            rows += [(fi, int(r)) for r in sel]
        has_index = bool(index) and all(i is not None for i in index)
        self.labels = np.concatenate(labels) if labels else np.zeros((0, 0), np.uint8)
        self.data = np.concatenate(data) if in_memory and data else None  # (n, P, C) float32
        sel_all = np.flatnonzero(keep)
        self.index = np.concatenate(index) if has_index else None  # (n, P) int64 or None
        self.rooms = [names[i] for i in sel_all]
        self._rows = rows  # (file number, row in file) per selected block
        self._handles: dict[int, object] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def _read(self, i: int) -> np.ndarray:
        import h5py

        if os.getpid() != self._pid:  # forked DataLoader worker: h5py handles are not fork-safe
            self._handles, self._pid = {}, os.getpid()
        fi, row = self._rows[i]
        h = self._handles.get(fi)
        if h is None:
            h = self._handles[fi] = h5py.File(self.files[fi], "r")
        return np.asarray(h["data"][row], dtype=np.float32)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        block = self.data[i] if self.data is not None else self._read(i)
        points = torch.from_numpy(block)  # (P, 9)
        if self.augment is not None:
            points = self.augment(points)
        return points, torch.from_numpy(self.labels[i].astype(np.int64))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"] = {}  # open files do not pickle (spawned DataLoader workers)
        return state

    def class_histogram(self) -> np.ndarray:
        """(num_classes,) point counts over all selected blocks (for class weights)."""
        return np.bincount(self.labels.ravel(), minlength=self.num_classes)

    def __repr__(self) -> str:
        return f"S3DISBlocks({self.folder}, blocks={len(self)}, rooms={len(set(self.rooms))})"
