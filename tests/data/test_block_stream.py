"""BlockStream (lazy, tiled test blocks) == room_to_blocks, bit for bit, for any tiling."""

from __future__ import annotations

import numpy as np
import pytest

from pointseg.data.blocks import BlockGrid, BlockStream, room_to_blocks


def _cloud(n=20000, extent=(7.3, 5.2, 2.7), seed=0):
    rng = np.random.default_rng(seed)
    # 1 mm grid, as real scans: many points sit exactly on column edges
    xyz = (np.round(rng.random((n, 3)) * np.asarray(extent), 3) + [10.0, -5.0, 1.0]).astype(
        np.float32
    )
    rgb = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    return xyz, rgb


def _stream_blocks(stream):
    data, idx, cells, homes = [], [], [], []
    for t in stream.tiles():
        d, i = t.features()
        data.append(d)
        idx.append(i)
        cells.append(t.plan.cell)
        homes.append(t.home)
    cells = np.concatenate(cells)
    order = np.argsort(cells[:, 0] * stream.grid.nby + cells[:, 1], kind="stable")
    return np.concatenate(data)[order], np.concatenate(idx)[order], cells[order], homes


@pytest.mark.parametrize(
    "block_size,stride,tile_size,centering",
    [
        (1.0, 0.5, 2.0, "points"),
        (1.0, 1.0, 2.0, "points"),
        (0.7, 0.3, 1.0, "cell"),
        (1.0, 1.5, 3.0, "points"),  # stride > block: gaps between columns
        (1.0, 0.5, 0.5, "points"),  # tiles narrower than a block
        (1.0, 0.5, None, "points"),  # one tile
    ],
)
def test_stream_equals_room_to_blocks(block_size, stride, tile_size, centering):
    xyz, rgb = _cloud()
    kw = dict(block_size=block_size, stride=stride, num_point=256, min_points=30, rng=5)
    ref = room_to_blocks(
        xyz, rgb, np.zeros(len(xyz), np.uint8), cover_all=True, centering=centering, **kw
    )
    stream = BlockStream(xyz, rgb, tile_size=tile_size, centering=centering, **kw)
    if tile_size is not None:
        assert stream.num_tiles > 1
    data, idx, cells, homes = _stream_blocks(stream)
    np.testing.assert_array_equal(idx, ref.index)
    np.testing.assert_array_equal(cells, ref.cell)
    np.testing.assert_array_equal(data, ref.data)  # bit-identical channels (whole-cloud extent)
    # every point has exactly one home tile
    np.testing.assert_array_equal(np.sort(np.concatenate(homes)), np.arange(len(xyz)))


def test_home_points_are_final_after_their_tile():
    xyz, rgb = _cloud(n=8000)
    stream = BlockStream(xyz, rgb, stride=0.5, num_point=128, min_points=10, rng=0, tile_size=2.0)
    finished = np.zeros(len(xyz), bool)
    for t in stream.tiles(workers=2):  # threaded planning keeps the order
        _, idx = t.features()
        assert not finished[idx].any()  # no vote after a point's home tile is done
        finished[t.home] = True
    assert finished.all()
    np.testing.assert_array_equal(stream.home_tile(np.arange(len(xyz)))[stream.home(3)], 3)


def test_tiles_hold_a_bounded_share_of_the_cloud():
    xyz, rgb = _cloud(n=40000, extent=(20.0, 20.0, 3.0))
    stream = BlockStream(xyz, rgb, stride=1.0, num_point=256, rng=0, tile_size=5.0)
    assert stream.num_tiles == 16
    # a 5 m tile + a one-block margin holds ~(6/20)^2 of the points
    assert max(len(t.points) for t in stream.tiles()) < 0.12 * len(xyz)


def test_grid_uses_whole_cloud_extent_and_rejects_nan():
    xyz, rgb = _cloud(n=500)
    g = BlockGrid.of(xyz, 1.0, 0.5, chunk=64)
    shifted = xyz.astype(np.float64) - xyz.astype(np.float64).min(0)
    np.testing.assert_array_equal(g.limit, shifted.max(0))
    bad = xyz.copy()
    bad[300, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf.*point 300"):
        BlockGrid.of(bad, 1.0, 0.5, chunk=64)
