"""Test blocks of clouds of any size, made lazily tile by tile (:class:`BlockStream`), and the
nearest-covered-point fill for points no kept block holds (:func:`nearest_covered_index`).

A stream makes exactly the samples of :func:`pointseg.data.blocks.grid.room_to_blocks` with the
same `rng` (tested bit for bit), whatever the tiling; see the recipe in `pointseg.data.blocks.grid`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pointseg.data.blocks.grid import (
    BlockGrid,
    TilePlan,
    axis_hi,
    axis_range,
    base_seed,
    block_features,
    check_cloud,
    check_recipe,
    plan_tile,
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
        xyz, rgb = check_cloud(xyz, rgb, "BlockStream")
        check_recipe(block_size, stride, num_point, min_points, centering)
        if tile_size is not None and not tile_size > 0:
            raise ValueError(f"tile_size must be > 0 (or None), got {tile_size}")
        self.xyz, self.rgb = xyz, rgb
        self.num_point, self.min_points = int(num_point), int(min_points)
        self.cover_all, self.centering = bool(cover_all), centering
        self.grid = g = BlockGrid.of(xyz, block_size, stride, chunk)
        self.base_seed = base_seed(rng)
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
            hx = axis_hi(pos[:, 0], g.nbx, stride)
            hy = axis_hi(pos[:, 1], g.nby, stride)
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
        hx = axis_hi(pos[:, 0], g.nbx, g.stride)
        hy = axis_hi(pos[:, 1], g.nby, g.stride)
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
        ranges = (*axis_range(pos[:, 0], g.nbx, g.block_size, g.stride),
                  *axis_range(pos[:, 1], g.nby, g.block_size, g.stride))  # fmt: skip
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
