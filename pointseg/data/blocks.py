"""S3DIS rooms → 1 m × 1 m blocks of 4096 points, the published HDF5 format, and its Dataset.

The block recipe is the one of the DeepGCNs paper, inherited from PointNet
(`indoor3d_util.room2blocks_plus_normalized`, Qi et al. 2017):

1. Shift the room so that its minimum corner is at the origin.
2. Lay a grid of `block_size` × `block_size` columns (full room height) over x–y, one column
   starting every `stride` metres (0.5 m for training, 1.0 m for testing):
   `ceil((max_x − block_size) / stride) + 1` columns along x (at least 1), same along y.
   A point belongs to every column with `x_beg ≤ x ≤ x_beg + block_size` (closed intervals, as
   PointNet), so with stride < block_size a point falls in several columns.
3. Drop columns with fewer than `min_points` points (100).
4. Sample `num_point` (4096) points per column: a random subset when the column holds more,
   all its points plus random duplicates when it holds fewer.
5. Nine channels per point: x, y minus the block centre; absolute z (after the shift);
   r, g, b / 255; x / max_x, y / max_y, z / max_z of the shifted room.

Differences from PointNet's code, all deliberate and documented here:

- PointNet draws the subset of a large block *with* replacement (`np.random.choice(N, 4096)`);
  we draw it without replacement, so no point is repeated while others are skipped.
- PointNet centres x, y on the minimum of the *sampled* points + block_size / 2. Our default
  (`centering="points"`) uses the minimum over *all* of the block's points, so every sample of a
  block shares one frame; `centering="cell"` uses the grid-column centre instead, and
  `centering="sampled"` is PointNet's own rule (what models trained on the published HDF5 blocks,
  such as DGCNN's, were fed; a checkpoint's input recipe says which it needs).
- `cover_all=True` (ours; used for test blocks and whole-room evaluation): a block with more
  than `num_point` points is split into ``ceil(m / num_point)`` samples that together contain
  every one of its points (the last sample is topped up with other points of the same block).
  Every point of every kept block then appears in at least one sample. Points that lie only in
  dropped (< `min_points`) blocks appear in none: `Blocks.in_kept_block` marks them and
  :func:`nearest_covered_index` maps each of them to its nearest covered point (scipy kd-tree),
  which is how the whole-room evaluator gives them a prediction.
- Random choices are made per column: column (i, j) samples with its own generator
  ``default_rng([seed, i, j])``, where `seed` is one draw of the `rng` argument. A column's samples
  therefore do not depend on which other columns are processed, or in which order, and
  :class:`BlockStream` (test blocks made lazily, tile by tile, for clouds of any size) makes exactly
  the samples of `room_to_blocks` with the same `rng` (tested bit for bit). The grid (min corner,
  extent for the x/max channels) is always the whole cloud's (:class:`BlockGrid`).
- Edge cases PointNet gets wrong: a room narrower than block_size − stride gets 0 columns there
  (we keep at least 1), and a room flat along an axis divides by a zero max (we keep 0).
- Speed: columns are found per point in O(1) and grouped with one stable (radix) sort instead
  of one full scan of the room per column: ~1.1 s CPU for a 1 M point, 12 m × 9 m room at
  stride 0.5 (391 blocks), where PointNet's loop spends ~3.4 s on the column masks alone.

HDF5 layout (`indoor3d_sem_seg_hdf5_data`, as published): `ply_data_all_<i>.h5` with `data`
[n, 4096, 9] float32 and `label` [n, 4096] uint8, plus `room_filelist.txt` (one
`Area_N_<room>` line per block, in file order). We add an `index` [n, 4096] int32 dataset
(point indices into the cached room), `all_files.txt` and a `manifest.json`.
"""

from __future__ import annotations

import json
import math
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pointseg.data.augment import BlockAugment  # re-exported: its home is data.augment
from pointseg.errors import DataError
from pointseg.io import atomic_write

NUM_CLASSES = 13
H5_PATTERN = "ply_data_all_*.h5"
_H5_RE = re.compile(r"ply_data_all_(\d+)\.h5$")
_AREA_RE = re.compile(r"^Area_(\d+)_")
MANIFEST_VERSION = 1


# ----------------------------------------------------------------------------------------------
# Room → blocks
# ----------------------------------------------------------------------------------------------


@dataclass
class Blocks:
    """Blocks of one room.

    Attributes:
        data: (n, num_point, 9) float32, the nine channels described in the module docstring.
        label: (n, num_point) uint8 class ids.
        index: (n, num_point) int64 indices of the sampled points in the room's point arrays.
        cell: (n, 2) int64 grid column (i, j) of each block sample (column origin
            ``(i * stride, j * stride)`` in the shifted room).
        in_kept_block: (N,) bool, True for room points inside at least one kept column
            (with `cover_all=True` these are exactly the points that appear in `index`).
        dropped_blocks: number of non-empty columns dropped for having < `min_points` points.
    """

    data: np.ndarray
    label: np.ndarray
    index: np.ndarray
    cell: np.ndarray
    in_kept_block: np.ndarray
    dropped_blocks: int

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def dropped_points(self) -> np.ndarray:
        """(d,) int64 indices of room points in no kept column (with stride <= block_size: the
        points that lie only in dropped, < min_points columns)."""
        return np.flatnonzero(~self.in_kept_block)


def _readable(tmp: Path) -> None:
    """Give a temp file from `atomic_write` (mkstemp: 0600) the usual 0666 & ~umask mode."""
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _num_cells(extent: float, block_size: float, stride: float) -> int:
    # PointNet: int(ceil((limit - block_size) / stride)) + 1. It yields 0 columns when the room is
    # narrower than block_size - stride; we keep at least one so tiny rooms are not lost.
    return max(1, int(math.ceil((extent - block_size) / stride)) + 1)


def _axis_range(
    coord: np.ndarray, n_cells: int, block_size: float, stride: float
) -> tuple[np.ndarray, np.ndarray]:
    """First and last column i with ``i*stride <= coord <= i*stride + block_size`` per point.

    The condition is monotone in i, so the columns of a point form the interval [lo, hi]
    (empty when lo > hi). floor/ceil give the bounds up to float rounding; one correction step
    each way then applies the exact comparisons of PointNet's loop (same float64 operations:
    ``i * stride`` and ``i * stride + block_size``), so boundary points land in the same columns.
    """
    hi = np.floor(coord / stride).astype(np.int64)  # (N,) largest i with i*stride <= x
    hi -= hi * stride > coord
    hi += (hi + 1) * stride <= coord
    lo = np.ceil((coord - block_size) / stride).astype(np.int64)  # smallest i with x <= i*s + b
    lo -= (lo - 1) * stride + block_size >= coord
    lo += lo * stride + block_size < coord
    return np.maximum(lo, 0), np.minimum(hi, n_cells - 1)


def _axis_hi(coord: np.ndarray, n_cells: int, stride: float) -> np.ndarray:
    """The `hi` of :func:`_axis_range` alone (last column of each point; same operations)."""
    hi = np.floor(coord / stride).astype(np.int64)
    hi -= hi * stride > coord
    hi += (hi + 1) * stride <= coord
    return np.minimum(hi, n_cells - 1)


def _memberships(
    xy: np.ndarray,
    nbx: int,
    nby: int,
    block_size: float,
    stride: float,
    cols: tuple[int, int, int, int] | None = None,
    ranges: tuple[np.ndarray, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All (point, column) memberships, sorted by column, room order within.

    `cols = (i0, i1, j0, j1)` keeps only the columns ``i0 <= i < i1, j0 <= j < j1`` (a tile);
    None keeps all ``nbx × nby``. Returns `points` (M,) int64 (row indices of `xy`) and `cells`
    (M,) int64 *local* column ids ``(i - i0) * (j1 - j0) + (j - j0)``; M ≈ N · (block_size /
    stride)².
    """
    i0, i1, j0, j1 = cols if cols is not None else (0, nbx, 0, nby)
    if ranges is None:  # (lo_x, hi_x, lo_y, hi_y) of `_axis_range`, unless given
        ranges = (*_axis_range(xy[:, 0], nbx, block_size, stride),
                  *_axis_range(xy[:, 1], nby, block_size, stride))  # fmt: skip
    lo_x, hi_x, lo_y, hi_y = ranges  # (N,) each
    if cols is not None:
        lo_x, hi_x = np.maximum(lo_x, i0), np.minimum(hi_x, i1 - 1)
        lo_y, hi_y = np.maximum(lo_y, j0), np.minimum(hi_y, j1 - 1)
    kx = np.maximum(hi_x - lo_x + 1, 0)
    ky = np.maximum(hi_y - lo_y + 1, 0)
    rep = kx * ky  # (N,) columns per point
    points = np.repeat(np.arange(xy.shape[0], dtype=np.int64), rep)  # (M,) point-major
    # Enumerate the kx × ky columns of each point: offset o -> (o // ky, o % ky).
    first = np.cumsum(rep) - rep  # (N,) first membership of each point
    o = np.arange(points.shape[0], dtype=np.int64) - first[points]
    kyp = ky[points]
    tny = j1 - j0
    cells = (lo_x[points] - i0 + o // kyp) * tny + lo_y[points] - j0 + o % kyp
    # Stable sort keeps room order inside a column (PointNet's `data[cond]` order); on 16-bit
    # keys numpy uses a linear-time radix sort.
    key = cells.astype(np.uint16) if (i1 - i0) * tny <= np.iinfo(np.uint16).max else cells
    order = np.argsort(key, kind="stable")
    return points[order], cells[order]


def _sample_block(
    members: np.ndarray, num_point: int, rng: np.random.Generator, cover_all: bool
) -> list[np.ndarray]:
    """Indices (num_point,) of one or more samples of a block whose room indices are `members`."""
    m = members.shape[0]
    if m == num_point:
        return [members]
    if m < num_point:
        # PointNet: all points, then num_point - m random duplicates (with replacement).
        dup = rng.choice(m, num_point - m, replace=True)
        return [np.concatenate([members, members[dup]])]
    if not cover_all:
        return [members[rng.choice(m, num_point, replace=False)]]
    perm = rng.permutation(m)
    k = -(-m // num_point)  # ceil
    short = k * num_point - m
    if short:
        # Top up the last sample with distinct points already used by the earlier samples.
        fill = rng.choice((k - 1) * num_point, short, replace=False)
        perm = np.concatenate([perm, perm[fill]])
    return [members[c] for c in perm.reshape(k, num_point)]


def _check_cloud(xyz: np.ndarray, rgb: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    xyz = np.asarray(xyz)
    rgb = np.asarray(rgb)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or xyz.shape[0] == 0:
        raise ValueError(f"{what}: xyz must have shape (N, 3) with N > 0, got {xyz.shape}")
    n = xyz.shape[0]
    if rgb.shape != (n, 3):
        raise ValueError(f"{what}: rgb must have shape ({n}, 3), got {rgb.shape}")
    return xyz, rgb


# x/y frame of a block sample: min over the block's points ("points", ours), min over the sample's
# points ("sampled", PointNet's room2blocks and so the published HDF5 blocks, DGCNN), grid cell centre.
CENTERINGS = ("points", "sampled", "cell")


def _check_recipe(
    block_size: float, stride: float, num_point: int, min_points: int, centering: str
) -> None:
    if not (block_size > 0 and stride > 0):
        raise ValueError(f"block_size and stride must be > 0, got {block_size}, {stride}")
    if num_point < 1 or min_points < 1:
        raise ValueError(f"num_point and min_points must be >= 1, got {num_point}, {min_points}")
    if centering not in CENTERINGS:
        raise ValueError(f"centering must be one of {list(CENTERINGS)}, got {centering!r}")


def _base_seed(rng: np.random.Generator | int | None) -> int:
    """One draw of `rng`: the seed every column's own generator is derived from."""
    return int(_as_rng(rng).integers(np.iinfo(np.int64).max))


@dataclass(frozen=True)
class BlockGrid:
    """The column grid of a whole cloud (recipe steps 1–2): min corner, extent, column counts.

    Every tile of a :class:`BlockStream` uses this one grid, so a column and its nine channels do
    not depend on how the cloud is tiled (channels 6:9 divide by the *whole* cloud's extent).
    """

    origin: np.ndarray  # (3,) float64 min corner of the cloud
    limit: np.ndarray  # (3,) float64 max of the shifted cloud (its extent)
    nbx: int
    nby: int
    block_size: float
    stride: float

    @classmethod
    def of(
        cls, xyz: np.ndarray, block_size: float, stride: float, chunk: int = 1 << 21
    ) -> BlockGrid:
        """Grid of `xyz` (N, 3); min/max are taken in chunks (no float64 copy of the cloud).

        Raises ValueError when a coordinate is NaN or infinite.
        """
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        for s in range(0, xyz.shape[0], chunk):
            c = xyz[s : s + chunk]
            if not np.isfinite(c).all():
                bad = s + int(np.flatnonzero(~np.isfinite(c).all(axis=1))[0])
                raise ValueError(f"xyz contains NaN or inf (first at point {bad})")
            lo = np.minimum(lo, c.min(axis=0))
            hi = np.maximum(hi, c.max(axis=0))
        # max(x - min) == max(x) - min in float64 (subtraction rounds monotonically), so this
        # equals the max of the shifted cloud computed point by point.
        limit = hi.astype(np.float64) - lo.astype(np.float64)
        return cls(
            origin=lo.astype(np.float64),
            limit=limit,
            nbx=_num_cells(limit[0], block_size, stride),
            nby=_num_cells(limit[1], block_size, stride),
            block_size=float(block_size),
            stride=float(stride),
        )

    def shift(self, xyz: np.ndarray) -> np.ndarray:
        """(m, 3) float64 coordinates relative to the min corner (recipe step 1)."""
        pos = xyz.astype(np.float64)
        pos -= self.origin
        return pos

    @property
    def safe_limit(self) -> np.ndarray:
        # A cloud that is flat along an axis has max 0 there; keep that channel at 0, not NaN.
        return np.where(self.limit > 0, self.limit, 1.0)


def block_features(
    pos: np.ndarray, rgb: np.ndarray, index: np.ndarray, centre: np.ndarray, grid: BlockGrid
) -> np.ndarray:
    """The nine channels (recipe step 5) of block samples.

    Args:
        pos: (m, 3) float64 shifted coordinates (`grid.shift`) of the points `index` refers to.
        rgb: (m, 3) colours 0..255 of the same points.
        index: (k, P) rows of `pos` per sample.
        centre: (k, 2) x, y frame centre of each sample.

    Returns:
        (k, P, 9) float32: x, y − centre; z; rgb / 255; xyz / the whole cloud's extent.
    """
    p = pos[index]  # (k, P, 3)
    data = np.empty((*index.shape, 9), dtype=np.float32)
    data[..., 0:2] = p[..., 0:2] - centre[:, None, :]
    data[..., 2] = p[..., 2]
    data[..., 3:6] = rgb[index].astype(np.float32) / 255.0
    data[..., 6:9] = p / grid.safe_limit
    return data


@dataclass
class TilePlan:
    """Block samples of one tile (or of a whole room: one tile covering every column).

    Attributes:
        index: (k, P) int64 sample point rows (into the tile's points).
        cell: (k, 2) int64 global grid column (i, j) of each sample.
        centre: (k, 2) float64 x, y frame centre of each sample.
        in_kept: (m,) bool, tile points inside at least one kept column of this tile.
        kept_blocks / dropped_blocks: columns of this tile with >= / < min_points (non-empty) points.
    """

    index: np.ndarray
    cell: np.ndarray
    centre: np.ndarray
    in_kept: np.ndarray
    kept_blocks: int
    dropped_blocks: int

    def __len__(self) -> int:
        return int(self.index.shape[0])


def plan_tile(
    pos: np.ndarray,
    grid: BlockGrid,
    cols: tuple[int, int, int, int] | None,
    *,
    num_point: int,
    min_points: int,
    base_seed: int,
    cover_all: bool,
    centering: str,
    ranges: tuple[np.ndarray, ...] | None = None,
) -> TilePlan:
    """Recipe steps 2–4 for the columns `cols` = (i0, i1, j0, j1) (None: every column) of the
    points `pos` (shifted, room order; must hold every point of those columns).

    Each column samples with its own generator ``default_rng([base_seed, i, j])``, so the samples
    of a column are the same whichever tile (or whole room) it is planned in.
    """
    i0, i1, j0, j1 = cols if cols is not None else (0, grid.nbx, 0, grid.nby)
    tny = j1 - j0
    ntile = (i1 - i0) * tny
    points, cells = _memberships(
        pos[:, :2], grid.nbx, grid.nby, grid.block_size, grid.stride, (i0, i1, j0, j1), ranges
    )
    counts = np.bincount(cells, minlength=ntile)  # (ntile,)
    starts = np.concatenate([[0], np.cumsum(counts)])
    kept = np.flatnonzero(counts >= min_points)
    in_kept = np.zeros(pos.shape[0], dtype=bool)
    in_kept[points[counts[cells] >= min_points]] = True

    sample_idx: list[np.ndarray] = []
    sample_col: list[int] = []  # position of the sample's column in `kept`
    col_min = np.zeros((kept.size, 2))  # (K, 2) min x, y over each kept column's points
    for q, c in enumerate(kept):
        members = points[starts[c] : starts[c + 1]]  # (m,) rows, room order
        i, j = i0 + int(c) // tny, j0 + int(c) % tny
        if centering == "points":
            col_min[q] = pos[members, :2].min(axis=0)
        rng = np.random.default_rng([base_seed, i, j])
        for s in _sample_block(members, num_point, rng, cover_all):
            sample_idx.append(s)
            sample_col.append(q)
    k = len(sample_idx)
    index = np.stack(sample_idx) if k else np.zeros((0, num_point), np.int64)  # (k, P)
    q = np.asarray(sample_col, dtype=np.int64)  # (k,)
    kept_ij = np.stack([i0 + kept // tny, j0 + kept % tny], axis=1).astype(np.int64)  # (K, 2)
    cell = kept_ij[q]  # (k, 2)
    if centering == "points":
        centre = col_min[q] + grid.block_size / 2  # (k, 2)
    elif centering == "sampled":  # PointNet's own: min over each sample's points
        centre = pos[index, :2].min(axis=1) + grid.block_size / 2 if k else np.zeros((0, 2))
    else:
        centre = cell * grid.stride + grid.block_size / 2
    return TilePlan(
        index=index.astype(np.int64),
        cell=cell,
        centre=centre,
        in_kept=in_kept,
        kept_blocks=int(kept.size),
        dropped_blocks=int(np.count_nonzero((counts > 0) & (counts < min_points))),
    )


def room_to_blocks(
    xyz: np.ndarray,
    rgb: np.ndarray,
    label: np.ndarray,
    *,
    block_size: float = 1.0,
    stride: float = 1.0,
    num_point: int = 4096,
    min_points: int = 100,
    rng: np.random.Generator | int | None = None,
    cover_all: bool = False,
    centering: str = "points",
) -> Blocks:
    """Cut one room into blocks with the paper's (PointNet) recipe; see the module docstring.

    Args:
        xyz: (N, 3) coordinates (any float dtype; the room need not be shifted).
        rgb: (N, 3) colours in 0..255 (uint8 or float).
        label: (N,) class ids in 0..255.
        block_size: column side in metres (1.0).
        stride: distance between column origins (0.5 train, 1.0 test).
        num_point: points per block sample (4096).
        min_points: columns with fewer points are dropped (100).
        rng: numpy Generator or seed; one draw seeds every column's own generator
            (``default_rng([seed, i, j])``), so :class:`BlockStream` with the same `rng` makes
            the same samples.
        cover_all: split big blocks into several samples so every point of a kept block is used.
        centering: "points" (block min over its points + block_size / 2, PointNet) or "cell"
            (grid-column centre).

    Returns:
        :class:`Blocks` with `data` (n, num_point, 9) float32, `label` (n, num_point) uint8 and
        `index` (n, num_point) int64, samples ordered by column (i major, j minor).

    All blocks of the room are held at once (~0.4 KB per point at stride 0.5); for inference on
    large clouds use :class:`BlockStream`, which makes the same samples tile by tile.
    """
    xyz, rgb = _check_cloud(xyz, rgb, "room_to_blocks")
    label = np.asarray(label)
    n = xyz.shape[0]
    if label.shape != (n,):
        raise ValueError(f"room_to_blocks: label must have shape ({n},), got {label.shape}")
    if not np.isfinite(xyz).all():
        raise ValueError("room_to_blocks: xyz contains NaN or inf")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(
            f"room_to_blocks: labels must be in 0..255, got {label.min()}..{label.max()}"
        )
    _check_recipe(block_size, stride, num_point, min_points, centering)
    grid = BlockGrid.of(xyz, block_size, stride)
    pos = grid.shift(xyz)  # (N, 3) room shifted to min corner 0
    plan = plan_tile(
        pos,
        grid,
        None,
        num_point=num_point,
        min_points=min_points,
        base_seed=_base_seed(rng),
        cover_all=cover_all,
        centering=centering,
    )
    return Blocks(
        data=block_features(pos, rgb, plan.index, plan.centre, grid),
        label=label[plan.index].astype(np.uint8),
        index=plan.index,
        cell=plan.cell,
        in_kept_block=plan.in_kept,
        dropped_blocks=plan.dropped_blocks,
    )


@dataclass
class Tile:
    """One tile of a :class:`BlockStream`: its points, their shifted coordinates and its plan.

    Attributes:
        points: (m,) int64 cloud indices (ascending) of every point in a column of the tile,
            including the margin (points of the next tiles that its border columns reach).
        home: (h,) cloud indices of the points whose last column lies in this tile: once the
            tile is done (tiles run x-major, y-minor) these points receive no more votes.
        cols: (i0, i1, j0, j1) grid columns of the tile.
    """

    points: np.ndarray
    pos: np.ndarray  # (m, 3) float64 shifted coordinates
    rgb: np.ndarray  # (m, 3)
    home: np.ndarray
    cols: tuple[int, int, int, int]
    plan: TilePlan
    grid: BlockGrid

    def features(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Samples `start:stop` → (data (b, P, 9) float32, cloud indices (b, P) int64)."""
        idx = self.plan.index[start:stop]
        data = block_features(self.pos, self.rgb, idx, self.plan.centre[start:stop], self.grid)
        return data, self.points[idx]


class BlockStream:
    """Test blocks of a whole cloud, generated lazily tile by tile (bounded memory).

    The cloud's column grid (:class:`BlockGrid`) is cut into square tiles of ``tile_cols``
    columns per side (``tile_size`` metres). A tile gathers every point of its columns — its own
    points plus a margin of the next tiles' points that its border columns reach (one block) — and
    plans its samples with :func:`plan_tile`. Samples, channels and column generators are those of
    :func:`room_to_blocks` with the same `rng`, whatever the tiling: the whole-cloud min corner
    and extent are used everywhere.

    Memory: the cloud itself, one int32/int64 index per point (points ordered by home tile), and
    the tiles in flight (~0.4 KB per tile point at stride 0.5, ~0.15 KB at stride 1).
    """

    def __init__(
        self,
        xyz: np.ndarray,
        rgb: np.ndarray,
        *,
        block_size: float = 1.0,
        stride: float = 1.0,
        num_point: int = 4096,
        min_points: int = 100,
        rng: np.random.Generator | int | None = None,
        cover_all: bool = True,
        centering: str = "points",
        tile_size: float | None = 10.0,
        chunk: int = 1 << 21,
    ) -> None:
        xyz, rgb = _check_cloud(xyz, rgb, "BlockStream")
        _check_recipe(block_size, stride, num_point, min_points, centering)
        if tile_size is not None and not tile_size > 0:
            raise ValueError(f"tile_size must be > 0 (or None), got {tile_size}")
        self.xyz, self.rgb = xyz, rgb
        self.num_point, self.min_points = int(num_point), int(min_points)
        self.cover_all, self.centering = bool(cover_all), centering
        self.grid = g = BlockGrid.of(xyz, block_size, stride, chunk)
        self.base_seed = _base_seed(rng)
        n = xyz.shape[0]
        big = max(g.nbx, g.nby)
        t = big if tile_size is None else max(1, int(math.floor(tile_size / stride + 1e-9)))
        self.tile_cols = min(t, big)
        self.ntx = -(-g.nbx // self.tile_cols)
        self.nty = -(-g.nby // self.tile_cols)
        # Tiles a point's columns can span beyond its home tile, per axis.
        self.span = -(-(int(block_size / stride) + 2) // self.tile_cols)
        if self.num_tiles == 1:
            self._order = None
            self._starts = np.array([0, n])
            return
        key = np.empty(n, dtype=np.int32)  # home tile of each point
        for s in range(0, n, chunk):
            pos = g.shift(xyz[s : s + chunk])
            hx = _axis_hi(pos[:, 0], g.nbx, stride)
            hy = _axis_hi(pos[:, 1], g.nby, stride)
            key[s : s + chunk] = (hx // self.tile_cols) * self.nty + hy // self.tile_cols
        order = np.argsort(key, kind="stable")  # room order within a tile
        self._order = order.astype(np.int32) if n < np.iinfo(np.int32).max else order
        del order
        self._starts = np.concatenate([[0], np.cumsum(np.bincount(key, minlength=self.num_tiles))])

    @property
    def num_tiles(self) -> int:
        return self.ntx * self.nty

    @property
    def num_points(self) -> int:
        return int(self.xyz.shape[0])

    def home(self, tile: int) -> np.ndarray:
        """(h,) int64 cloud indices (ascending) of the points whose home is tile id `tile`."""
        a, b = self._starts[tile], self._starts[tile + 1]
        if self._order is None:
            return np.arange(a, b, dtype=np.int64)
        return self._order[a:b].astype(np.int64)

    def home_tile(self, index: np.ndarray) -> np.ndarray:
        """(k,) home tile ids of the cloud points `index`."""
        if self.num_tiles == 1:
            return np.zeros(len(index), dtype=np.int64)
        g, t = self.grid, self.tile_cols
        pos = g.shift(self.xyz[index])
        hx = _axis_hi(pos[:, 0], g.nbx, g.stride)
        hy = _axis_hi(pos[:, 1], g.nby, g.stride)
        return (hx // t) * self.nty + hy // t

    def tile_ids(self) -> list[int]:
        """Tile ids (tx * nty + ty) in processing order (x-major), tiles without points skipped."""
        out = []
        for tx in range(self.ntx):
            for ty in range(self.nty):
                near = [
                    hx * self.nty + hy
                    for hx in range(tx, min(tx + self.span + 1, self.ntx))
                    for hy in range(ty, min(ty + self.span + 1, self.nty))
                ]
                if any(self._starts[h + 1] > self._starts[h] for h in near):
                    out.append(tx * self.nty + ty)
        return out

    def tile(self, tid: int) -> Tile:
        """Gather and plan tile `tid` (pure function of the stream: safe in worker threads)."""
        g, t = self.grid, self.tile_cols
        tx, ty = divmod(tid, self.nty)
        cols = (tx * t, min((tx + 1) * t, g.nbx), ty * t, min((ty + 1) * t, g.nby))
        home = self.home(tid)
        if self.num_tiles == 1:
            points = home
        else:
            parts = [
                self.home(hx * self.nty + hy)
                for hx in range(tx, min(tx + self.span + 1, self.ntx))
                for hy in range(ty, min(ty + self.span + 1, self.nty))
            ]
            points = np.sort(np.concatenate(parts))
        pos = g.shift(self.xyz[points])
        ranges = (*_axis_range(pos[:, 0], g.nbx, g.block_size, g.stride),
                  *_axis_range(pos[:, 1], g.nby, g.block_size, g.stride))  # fmt: skip
        if self.num_tiles > 1:
            # Keep the margin points that reach one of this tile's columns.
            keep = (ranges[0] < cols[1]) & (ranges[2] < cols[3])
            if not keep.all():
                points, pos = points[keep], pos[keep]
                ranges = tuple(r[keep] for r in ranges)
        plan = plan_tile(
            pos,
            g,
            cols,
            num_point=self.num_point,
            min_points=self.min_points,
            base_seed=self.base_seed,
            cover_all=self.cover_all,
            centering=self.centering,
            ranges=ranges,
        )
        return Tile(
            points=points, pos=pos, rgb=self.rgb[points], home=home, cols=cols, plan=plan, grid=g
        )

    def tiles(self, workers: int = 0) -> Iterator[Tile]:
        """Tiles in processing order; `workers` > 0 plans that many tiles ahead in threads."""
        ids = self.tile_ids()
        if workers <= 0:
            for tid in ids:
                yield self.tile(tid)
            return
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers, thread_name_prefix="pointseg-tiles") as pool:
            pending: deque = deque()
            it = iter(ids)
            for tid in it:
                pending.append(pool.submit(self.tile, tid))
                if len(pending) >= workers:
                    break
            while pending:
                tile = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(self.tile, nxt))
                yield tile


def nearest_covered_index(xyz: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Map every room point to itself if `covered`, else to its nearest covered point.

    Whole-room evaluation predicts only points that appear in some block; points of dropped
    (< min_points) blocks get the prediction of their nearest covered neighbour:
    ``pred_all = pred_covered_filled[nearest_covered_index(xyz, covered)]``.

    Args:
        xyz: (N, 3) room coordinates.
        covered: (N,) bool mask of points that received a prediction.

    Returns:
        (N,) int64 source point index for every point.
    """
    from scipy.spatial import cKDTree

    xyz = np.asarray(xyz, dtype=np.float64)
    covered = np.asarray(covered, dtype=bool)
    if covered.shape != (xyz.shape[0],):
        raise ValueError(f"covered must have shape ({xyz.shape[0]},), got {covered.shape}")
    src = np.arange(xyz.shape[0], dtype=np.int64)
    missing = np.flatnonzero(~covered)
    if missing.size == 0:
        return src
    have = np.flatnonzero(covered)
    if have.size == 0:
        raise ValueError("nearest_covered_index: no covered point to copy predictions from")
    _, nn = cKDTree(xyz[have]).query(xyz[missing], k=1)
    src[missing] = have[nn]
    return src


# ----------------------------------------------------------------------------------------------
# HDF5 files
# ----------------------------------------------------------------------------------------------


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
        _readable(tmp)
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
    _check_block_arrays(path, out)
    return out


def _check_block_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
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


def area_of_room(name: str) -> int:
    """`Area_5_office_1` → 5."""
    m = _AREA_RE.match(name)
    if not m:
        raise ValueError(f"room name {name!r} does not start with 'Area_<N>_'")
    return int(m.group(1))


def parse_areas(areas: Iterable[int | str] | int | str | None) -> list[int] | None:
    """Normalise area selections: 5, "5", "Area_5", "1,2,3", [1, "Area_2"] → sorted ints."""
    if areas is None:
        return None
    if isinstance(areas, int | str):
        areas = [areas]
    out: set[int] = set()
    for a in areas:
        for part in str(a).split(","):
            part = part.strip()
            if not part:
                continue
            m = re.fullmatch(r"(?:Area_)?(\d+)", part)
            if not m:
                raise ValueError(f"bad area {part!r}: expected a number 1-6 or 'Area_<N>'")
            out.add(int(m.group(1)))
    return sorted(out)


# ----------------------------------------------------------------------------------------------
# Room cache → HDF5 blocks
# ----------------------------------------------------------------------------------------------


def _room_rng(seed: int, area: int, room: str) -> np.random.Generator:
    # Keyed by room name, not position: resuming or selecting other areas reproduces the same
    # blocks for the same room.
    return np.random.default_rng([seed, area, zlib.crc32(room.encode())])


def _area_number(area: str | int) -> int:
    return int(str(area).removeprefix("Area_"))


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

    from pointseg.data import s3dis

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

    all_rooms = s3dis.list_rooms(cache)  # sorted naturally by area, room
    rooms = [r for r in all_rooms if wanted is None or _area_number(r["area"]) in wanted]
    if not rooms:
        have = sorted({_area_number(r["area"]) for r in all_rooms})
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
    manifest_path = folder / "manifest.json"
    manifest = None
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError:
            manifest = None
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
            _readable(tmp)
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
        area = _area_number(entry["area"])
        name = f"Area_{area}_{entry['room']}"
        bar.set_postfix_str(name)
        room = s3dis.load_room(entry["path"])
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
        _readable(tmp)
        tmp.write_text("".join(f"{ln}\n" for ln in lines))
    with atomic_write(folder / "all_files.txt", suffix=".txt") as tmp:
        _readable(tmp)
        tmp.write_text("".join(f"{f['file']}\n" for f in state["files"]))
    return save_manifest(complete=True)


# ----------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------


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
                _check_block_arrays(f, part)
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
