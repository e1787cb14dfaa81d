"""S3DIS rooms → 1 m × 1 m blocks of 4096 points, the published HDF5 format, and its Dataset.

Package layout (one idea per module):

- `grid`: the block recipe of the DeepGCNs paper (PointNet's `room2blocks_plus_normalized`, the
  deliberate differences documented there): :class:`BlockGrid`, :func:`plan_tile`,
  :func:`room_to_blocks`.
- `stream`: the same test blocks made lazily tile by tile for clouds of any size
  (:class:`BlockStream`), and :func:`nearest_covered_index`.
- `hdf5`: the published `ply_data_all_<i>.h5` format, read and written, and the block manifest.
- `make`: :func:`make_s3dis_blocks`, a room cache → resumable HDF5 block folders.
- `dataset`: :class:`S3DISBlocks`, the torch Dataset.

Augmentation lives in `pointseg.data.augment` (:class:`BlockAugment`, re-exported here); area
names in `pointseg.data.areas`.
"""

from __future__ import annotations

from pointseg.data.areas import area_of_room, parse_areas
from pointseg.data.augment import BlockAugment
from pointseg.data.blocks.dataset import S3DISBlocks
from pointseg.data.blocks.grid import (
    CENTERINGS,
    BlockGrid,
    Blocks,
    TilePlan,
    block_features,
    plan_tile,
    room_to_blocks,
)
from pointseg.data.blocks.hdf5 import (
    H5_PATTERN,
    list_block_files,
    read_blocks_h5,
    read_blocks_manifest,
    write_blocks_h5,
)
from pointseg.data.blocks.make import MANIFEST_VERSION, make_s3dis_blocks
from pointseg.data.blocks.stream import BlockStream, Tile, nearest_covered_index
from pointseg.data.s3dis.classes import NUM_CLASSES

__all__ = [
    "CENTERINGS",
    "H5_PATTERN",
    "MANIFEST_VERSION",
    "NUM_CLASSES",
    "BlockAugment",
    "BlockGrid",
    "BlockStream",
    "Blocks",
    "S3DISBlocks",
    "Tile",
    "TilePlan",
    "area_of_room",
    "block_features",
    "list_block_files",
    "make_s3dis_blocks",
    "nearest_covered_index",
    "parse_areas",
    "plan_tile",
    "read_blocks_h5",
    "read_blocks_manifest",
    "room_to_blocks",
    "write_blocks_h5",
]
