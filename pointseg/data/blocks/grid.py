"""The block recipe: S3DIS rooms → 1 m × 1 m blocks of 4096 points, nine channels per point.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _num_cells(extent: float, block_size: float, stride: float) -> int:
    # PointNet: int(ceil((limit - block_size) / stride)) + 1. It yields 0 columns when the room is
    # narrower than block_size - stride; we keep at least one so tiny rooms are not lost.
    return max(1, int(math.ceil((extent - block_size) / stride)) + 1)


def axis_range(
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


def axis_hi(coord: np.ndarray, n_cells: int, stride: float) -> np.ndarray:
    """The `hi` of :func:`axis_range` alone (last column of each point; same operations)."""
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
    if ranges is None:  # (lo_x, hi_x, lo_y, hi_y) of `axis_range`, unless given
        ranges = (*axis_range(xy[:, 0], nbx, block_size, stride),
                  *axis_range(xy[:, 1], nby, block_size, stride))  # fmt: skip
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


def check_cloud(xyz: np.ndarray, rgb: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
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


def check_recipe(
    block_size: float, stride: float, num_point: int, min_points: int, centering: str
) -> None:
    if not (block_size > 0 and stride > 0):
        raise ValueError(f"block_size and stride must be > 0, got {block_size}, {stride}")
    if num_point < 1 or min_points < 1:
        raise ValueError(f"num_point and min_points must be >= 1, got {num_point}, {min_points}")
    if centering not in CENTERINGS:
        raise ValueError(f"centering must be one of {list(CENTERINGS)}, got {centering!r}")


def base_seed(rng: np.random.Generator | int | None) -> int:
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
    xyz, rgb = check_cloud(xyz, rgb, "room_to_blocks")
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
    check_recipe(block_size, stride, num_point, min_points, centering)
    grid = BlockGrid.of(xyz, block_size, stride)
    pos = grid.shift(xyz)  # (N, 3) room shifted to min corner 0
    plan = plan_tile(
        pos,
        grid,
        None,
        num_point=num_point,
        min_points=min_points,
        base_seed=base_seed(rng),
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
