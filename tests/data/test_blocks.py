"""S3DIS block recipe, published HDF5 format, S3DISBlocks, `pointseg blocks s3dis`."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pointseg.data.blocks import (
    S3DISBlocks,
    make_s3dis_blocks,
    nearest_covered_index,
    read_blocks_h5,
    room_to_blocks,
    write_blocks_h5,
)
from pointseg.data.blocks import make as B
from pointseg.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
RAW = SHARED / "s3dis_raw"


def make_room(n: int = 3000, extent=(3.2, 2.1, 2.7), seed: int = 0, offset=(10.0, -5.0, 1.0)):
    """Random room on a 1 mm grid (as real S3DIS coordinates), so many points sit exactly on
    block boundaries; not shifted to the origin."""
    rng = np.random.default_rng(seed)
    xyz = np.round(rng.random((n, 3)) * np.asarray(extent), 3) + np.asarray(offset)
    rgb = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    label = rng.integers(0, 13, n).astype(np.uint8)
    return xyz.astype(np.float32), rgb, label


def pointnet_blocks(xyz, block_size, stride, min_points):
    """PointNet's `room2blocks` loop (indoor3d_util.py), membership only: list of index arrays."""
    data = xyz.astype(np.float64) - xyz.astype(np.float64).min(0)
    limit = data.max(0)
    nbx = max(1, int(np.ceil((limit[0] - block_size) / stride)) + 1)
    nby = max(1, int(np.ceil((limit[1] - block_size) / stride)) + 1)
    out = []
    for i in range(nbx):
        for j in range(nby):
            xbeg, ybeg = i * stride, j * stride
            xcond = (data[:, 0] <= xbeg + block_size) & (data[:, 0] >= xbeg)
            ycond = (data[:, 1] <= ybeg + block_size) & (data[:, 1] >= ybeg)
            cond = xcond & ycond
            if np.sum(cond) < min_points:
                continue
            out.append(((i, j), np.flatnonzero(cond)))
    return out


# ------------------------------------------------------------------------------ block recipe


@pytest.mark.parametrize("centering", ["points", "cell"])
def test_channel_semantics(centering):
    xyz, rgb, label = make_room()
    b = room_to_blocks(xyz, rgb, label, num_point=256, min_points=10, rng=0, centering=centering)
    assert b.data.shape == (len(b), 256, 9) and b.data.dtype == np.float32
    assert b.label.shape == (len(b), 256) and b.label.dtype == np.uint8
    assert b.index.dtype == np.int64 and len(b) > 0
    shifted = xyz.astype(np.float64) - xyz.astype(np.float64).min(0)
    p = shifted[b.index]  # (n, P, 3)
    # x, y block-centred, inside [-0.5, 0.5]
    assert np.abs(b.data[..., 0:2]).max() <= 0.5 + 1e-6
    if centering == "cell":
        centre = b.cell * 1.0 + 0.5
        np.testing.assert_allclose(b.data[..., 0:2], p[..., :2] - centre[:, None], atol=1e-6)
    else:
        # frame origin = min over all of the block's points (not only the sampled ones) + 0.5
        xy = shifted[:, :2]
        for k, (i, j) in enumerate(b.cell):
            inside = ((xy >= [i, j]) & (xy <= [i + 1.0, j + 1.0])).all(axis=1)
            centre = xy[inside].min(axis=0) + 0.5
            np.testing.assert_allclose(b.data[k, :, 0:2], p[k, :, :2] - centre, atol=1e-6)
    # each sampled point lies in its column (closed interval)
    lo = b.cell[:, None, :] * 1.0
    assert ((p[..., :2] >= lo - 1e-9) & (p[..., :2] <= lo + 1.0 + 1e-9)).all()
    np.testing.assert_allclose(b.data[..., 2], p[..., 2], atol=1e-5)  # absolute z after shift
    np.testing.assert_allclose(b.data[..., 3:6], rgb[b.index] / 255.0, atol=1e-7)
    np.testing.assert_allclose(b.data[..., 6:9], p / shifted.max(0), atol=1e-6)
    assert b.data[..., 6:9].min() >= 0 and b.data[..., 6:9].max() <= 1 + 1e-6
    np.testing.assert_array_equal(b.label, label[b.index])


@pytest.mark.parametrize("stride", [1.0, 0.5])
def test_membership_and_order_match_pointnet_loop(stride):
    # cover_all + num_point above every block size: each sample holds all of its block's points
    xyz, rgb, label = make_room(n=2500, seed=1)
    b = room_to_blocks(
        xyz, rgb, label, stride=stride, num_point=2048, min_points=100, rng=0, cover_all=True
    )
    ref = pointnet_blocks(xyz, 1.0, stride, 100)
    assert len(b) == len(ref)
    for k, (cell, members) in enumerate(ref):
        assert tuple(b.cell[k]) == cell
        np.testing.assert_array_equal(np.unique(b.index[k]), members)
        # PointNet order: all block points in room order first, then duplicates
        np.testing.assert_array_equal(b.index[k, : len(members)], members)


def test_min_points_drop_and_nearest_covered():
    rng = np.random.default_rng(0)
    dense = rng.random((500, 3)) * [0.9, 0.9, 2.0]  # column (0, 0)
    sparse = rng.random((50, 3)) * [0.5, 0.5, 2.0] + [2.2, 0.2, 0.0]  # column (2, 0)
    xyz = np.concatenate([dense, sparse]).astype(np.float32)
    rgb = np.zeros((550, 3), np.uint8)
    label = np.zeros(550, np.uint8)
    b = room_to_blocks(xyz, rgb, label, num_point=128, min_points=100, rng=0, cover_all=True)
    assert (b.cell == [0, 0]).all()
    assert b.dropped_blocks == 1
    np.testing.assert_array_equal(b.dropped_points, np.arange(500, 550))
    assert set(np.unique(b.index)) == set(range(500))
    src = nearest_covered_index(xyz, b.in_kept_block)
    np.testing.assert_array_equal(src[:500], np.arange(500))
    # brute-force nearest covered point for each dropped point
    d = np.linalg.norm(xyz[500:, None].astype(np.float64) - xyz[None, :500], axis=2)
    np.testing.assert_array_equal(src[500:], d.argmin(axis=1))
    # with min_points lowered, the sparse column is kept
    b2 = room_to_blocks(xyz, rgb, label, num_point=128, min_points=50, rng=0)
    assert b2.dropped_blocks == 0 and b2.dropped_points.size == 0


def test_short_block_is_duplicated_big_block_sampled_without_replacement():
    rng = np.random.default_rng(0)
    xyz = (rng.random((300, 3)) * 0.9).astype(np.float32)
    z = np.zeros((300, 3), np.uint8)
    b = room_to_blocks(xyz, z, z[:, 0], num_point=512, rng=0)
    assert len(b) == 1
    np.testing.assert_array_equal(b.index[0, :300], np.arange(300))  # all points, room order
    assert np.isin(b.index[0, 300:], np.arange(300)).all()  # then duplicates of block points
    big = (rng.random((1000, 3)) * 0.9).astype(np.float32)
    z = np.zeros((1000, 3), np.uint8)
    b = room_to_blocks(big, z, z[:, 0], num_point=256, rng=0)
    assert len(b) == 1 and len(np.unique(b.index[0])) == 256  # no repeats


def test_cover_all_splits_big_blocks_and_covers_every_point():
    xyz, rgb, label = make_room(n=6000, seed=2)
    b = room_to_blocks(xyz, rgb, label, num_point=128, min_points=100, rng=0, cover_all=True)
    ref = pointnet_blocks(xyz, 1.0, 1.0, 100)
    # ceil(m / num_point) samples per block, each without repeats when m is a multiple
    assert len(b) == sum(math.ceil(len(m) / 128) for _, m in ref)
    for cell, members in ref:
        rows = np.flatnonzero((b.cell == cell).all(axis=1))
        assert set(np.unique(b.index[rows])) == set(members)
    covered = np.zeros(len(xyz), bool)
    covered[b.index.ravel()] = True
    np.testing.assert_array_equal(covered, b.in_kept_block)
    # without cover_all the same room leaves points out
    b0 = room_to_blocks(xyz, rgb, label, num_point=128, min_points=100, rng=0)
    assert len(np.unique(b0.index)) < b.in_kept_block.sum()


def test_same_seed_same_blocks_and_bad_input():
    xyz, rgb, label = make_room(n=1000)
    a = room_to_blocks(xyz, rgb, label, num_point=64, stride=0.5, rng=7)
    b = room_to_blocks(xyz, rgb, label, num_point=64, stride=0.5, rng=7)
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(ValueError, match="rgb"):
        room_to_blocks(xyz, rgb[:10], label)
    with pytest.raises(ValueError, match="NaN"):
        bad = xyz.copy()
        bad[3, 1] = np.nan
        room_to_blocks(bad, rgb, label)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        room_to_blocks(xyz[:, :2], rgb, label)


def test_real_room_cover_all_at_test_stride():
    if not RAW.is_dir():
        pytest.skip("shared S3DIS sample data absent")
    from pointseg.data.s3dis import parse_room

    room, _ = parse_room(RAW / "Area_1" / "hallway_1")
    b = room_to_blocks(room.xyz, room.rgb, room.label, stride=1.0, rng=0, cover_all=True)
    n = room.num_points
    covered = np.zeros(n, bool)
    covered[b.index.ravel()] = True
    # every point is in a sample, except those only in dropped (< 100 point) blocks
    np.testing.assert_array_equal(covered, b.in_kept_block)
    assert covered.sum() + b.dropped_points.size == n
    assert b.dropped_points.size < 0.01 * n  # measured: 98 of 69,370 points
    assert np.abs(b.data[..., :2]).max() <= 0.5 + 1e-6
    assert b.data[..., 6:9].max() <= 1 + 1e-6
    np.testing.assert_array_equal(b.label, room.label[b.index])


# ------------------------------------------------------------------------------ HDF5


def test_h5_write_read_exact(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((5, 64, 9)).astype(np.float32)
    label = rng.integers(0, 13, (5, 64)).astype(np.uint8)
    index = rng.integers(0, 10**6, (5, 64))
    write_blocks_h5(tmp_path / "ply_data_all_0.h5", data, label, index)
    out = read_blocks_h5(tmp_path / "ply_data_all_0.h5")
    np.testing.assert_array_equal(out["data"], data)
    np.testing.assert_array_equal(out["label"], label)
    np.testing.assert_array_equal(out["index"], index)
    with h5py.File(tmp_path / "ply_data_all_0.h5") as f:
        assert f["data"].dtype == np.float32 and f["label"].dtype == np.uint8
        assert f["index"].dtype == np.int32
    assert [p.name for p in tmp_path.iterdir()] == ["ply_data_all_0.h5"]  # no temp left
    write_blocks_h5(tmp_path / "b.h5", data, label)
    assert "index" not in read_blocks_h5(tmp_path / "b.h5")
    with pytest.raises(ValueError, match="label"):
        write_blocks_h5(tmp_path / "c.h5", data, label[:, :10])


def write_published(
    folder: Path, nfiles: int = 11, per_file: int = 2, p: int = 16, label_dtype=np.uint8
):
    """Published-layout folder: data/label only (no index), room_filelist.txt, no all_files.txt."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names, datas, labels = [], [], []
    for i in range(nfiles):
        d = rng.standard_normal((per_file, p, 9)).astype(np.float32)
        lab = rng.integers(0, 13, (per_file, p)).astype(label_dtype)
        with h5py.File(folder / f"ply_data_all_{i}.h5", "w") as f:
            f.create_dataset("data", data=d)
            f.create_dataset("label", data=lab)
        area = 5 if i % 3 == 0 else 1 + i % 3
        names += [f"Area_{area}_office_{i}"] * per_file
        datas.append(d)
        labels.append(lab)
    (folder / "room_filelist.txt").write_text("".join(f"{n}\n" for n in names))
    return names, np.concatenate(datas), np.concatenate(labels)


@pytest.mark.parametrize("label_dtype", [np.uint8, np.int64])
def test_published_layout_with_area_filter(tmp_path, label_dtype):
    root = tmp_path / "indoor3d_sem_seg_hdf5_data"
    names, data, labels = write_published(root, label_dtype=label_dtype)
    ds = S3DISBlocks(root)  # <root> itself, 11 files: numeric, not lexicographic, file order
    assert len(ds) == 22 and ds.rooms == names and ds.index is None
    np.testing.assert_array_equal(ds.data, data)
    is5 = np.array([n.startswith("Area_5_") for n in names])
    test = S3DISBlocks(root, areas=[5])
    train = S3DISBlocks(root, exclude_areas=["Area_5"])
    assert len(test) == is5.sum() and len(train) == (~is5).sum()
    assert all(r.startswith("Area_5_") for r in test.rooms)
    assert not any(r.startswith("Area_5_") for r in train.rooms)
    x, y = test[1]
    k = np.flatnonzero(is5)[1]
    assert x.dtype == torch.float32 and x.shape == (16, 9)
    assert y.dtype == torch.int64 and y.shape == (16,)
    torch.testing.assert_close(x, torch.from_numpy(data[k]), rtol=0, atol=0)  # augment off
    torch.testing.assert_close(y, torch.from_numpy(labels[k].astype(np.int64)))
    # lazy mode reads the same blocks from the files, also after pickling (spawned workers)
    lazy = S3DISBlocks(root, areas=[5], in_memory=False)
    assert lazy.data is None and len(lazy) == len(test) and lazy.rooms == test.rooms
    for i in range(len(test)):
        torch.testing.assert_close(lazy[i][0], test[i][0], rtol=0, atol=0)
        torch.testing.assert_close(lazy[i][1], test[i][1])
    clone = pickle.loads(pickle.dumps(lazy))
    torch.testing.assert_close(clone[2][0], test[2][0], rtol=0, atol=0)
    assert len(S3DISBlocks(root, areas=[6])) == 0  # empty selection: callers check len()


def test_dataset_errors(tmp_path):
    with pytest.raises(DataError, match="no ply_data_all"):
        S3DISBlocks(tmp_path)
    root = tmp_path / "pub"
    write_published(root, nfiles=2)
    (root / "room_filelist.txt").write_text("Area_1_office_1\n")
    with pytest.raises(DataError, match="1 lines but"):
        S3DISBlocks(root)
    (root / "room_filelist.txt").unlink()
    assert len(S3DISBlocks(root)) == 4  # filelist only needed to select areas
    with pytest.raises(DataError, match="room_filelist.txt is missing"):
        S3DISBlocks(root, areas=[1])
    bad = tmp_path / "bad"
    bad.mkdir()
    with h5py.File(bad / "ply_data_all_0.h5", "w") as f:
        f.create_dataset("data", data=np.zeros((1, 4, 9), np.float32))
        f.create_dataset("label", data=np.full((1, 4), 13, np.uint8))
    with pytest.raises(DataError, match=r"ply_data_all_0.h5: label out of range"):
        S3DISBlocks(bad)


# ------------------------------------------------------------------------------ cache → HDF5


def write_cache(root: Path, rooms: dict[tuple[int, str], int]) -> None:
    """A room cache in the documented format (docs/architecture.md, pointseg.data.s3dis)."""
    entries = []
    for seed, ((area, name), n) in enumerate(rooms.items()):
        xyz, rgb, label = make_room(n=n, seed=seed, extent=(2.6, 1.7, 2.5))
        f = f"Area_{area}/{name}.npz"
        (root / f"Area_{area}").mkdir(parents=True, exist_ok=True)
        np.savez(root / f, xyz=xyz, rgb=rgb, label=label, instance=np.zeros(n, np.int32))
        entries.append(
            {"area": f"Area_{area}", "room": name, "file": f, "points": n,
             "histogram": np.bincount(label, minlength=13).tolist()}
        )  # fmt: skip
    (root / "index.json").write_text(json.dumps({"version": 1, "classes": [], "rooms": entries}))


# in list_rooms order (area, then room name)
ROOMS = {(1, "hallway_2"): 900, (1, "office_1"): 1500, (5, "office_1"): 1200}


def test_make_blocks_matches_room_to_blocks(tmp_path):
    write_cache(tmp_path / "cache", ROOMS)
    m = make_s3dis_blocks(
        tmp_path / "cache", tmp_path / "out", split="train", num_point=64, blocks_per_file=7,
        progress=False,
    )  # fmt: skip
    folder = tmp_path / "out" / "train"
    expected_names, expected = [], []
    for (area, name), _ in ROOMS.items():
        room = np.load(tmp_path / "cache" / f"Area_{area}" / f"{name}.npz")
        b = room_to_blocks(
            room["xyz"], room["rgb"], room["label"], stride=0.5, num_point=64,
            rng=B._room_rng(0, area, name),
        )  # fmt: skip
        expected.append(b)
        expected_names += [f"Area_{area}_{name}"] * len(b)
    total = sum(len(b) for b in expected)
    assert m["complete"] and m["blocks"] == total
    assert len(m["files"]) == math.ceil(total / 7)
    assert (folder / "room_filelist.txt").read_text().split() == expected_names
    ds = S3DISBlocks(tmp_path / "out", split="train")
    np.testing.assert_array_equal(ds.data, np.concatenate([b.data for b in expected]))
    np.testing.assert_array_equal(ds.index, np.concatenate([b.index for b in expected]))
    assert len(S3DISBlocks(tmp_path / "out", areas=[5])) == len(expected[2])
    # test split: stride 1.0 with cover_all by default
    t = make_s3dis_blocks(
        tmp_path / "cache", tmp_path / "out", split="test", num_point=64, progress=False
    )
    assert t["params"]["stride"] == 1.0 and t["params"]["cover_all"] is True


def test_make_blocks_resumes_after_crash(tmp_path, monkeypatch):
    write_cache(tmp_path / "cache", ROOMS)
    kw = {"split": "train", "num_point": 32, "blocks_per_file": 5, "progress": False}
    clean = make_s3dis_blocks(tmp_path / "cache", tmp_path / "clean", **kw)

    real_write, calls = B.write_blocks_h5, {"n": 0}

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_write(*a, **k)

    monkeypatch.setattr(B, "write_blocks_h5", crashing)
    with pytest.raises(KeyboardInterrupt):
        make_s3dis_blocks(tmp_path / "cache", tmp_path / "resumed", **kw)
    partial = json.loads((tmp_path / "resumed" / "train" / "manifest.json").read_text())
    assert not partial["complete"] and len(partial["files"]) == 3
    monkeypatch.setattr(B, "write_blocks_h5", real_write)
    resumed = make_s3dis_blocks(tmp_path / "cache", tmp_path / "resumed", **kw)
    assert resumed["blocks"] == clean["blocks"] and resumed["rooms"] == clean["rooms"]
    a = S3DISBlocks(tmp_path / "clean")
    b = S3DISBlocks(tmp_path / "resumed")
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.index, b.index)
    assert a.rooms == b.rooms
    # complete: a rerun writes nothing; other parameters need --overwrite
    f0 = tmp_path / "resumed" / "train" / "ply_data_all_0.h5"
    mtime = f0.stat().st_mtime_ns
    make_s3dis_blocks(tmp_path / "cache", tmp_path / "resumed", **kw)
    assert f0.stat().st_mtime_ns == mtime
    with pytest.raises(DataError, match="different parameters"):
        make_s3dis_blocks(tmp_path / "cache", tmp_path / "resumed", **{**kw, "num_point": 16})
    m = make_s3dis_blocks(
        tmp_path / "cache", tmp_path / "resumed", **{**kw, "num_point": 16}, overwrite=True
    )
    assert S3DISBlocks(tmp_path / "resumed").data.shape[1:] == (16, 9)
    assert len(m["files"]) == len(list((tmp_path / "resumed" / "train").glob("*.h5")))
    # a file deleted by hand: the "complete" output is rebuilt instead of trusted
    (tmp_path / "resumed" / "train" / "ply_data_all_1.h5").unlink()
    kw16 = {**kw, "num_point": 16}
    make_s3dis_blocks(tmp_path / "cache", tmp_path / "resumed", **kw16)
    assert len(S3DISBlocks(tmp_path / "resumed")) == m["blocks"]


def test_cli(tmp_path, capsys):
    from pointseg.cli import main

    assert main(["blocks", "s3dis", "--cache", str(tmp_path / "none"), "--out", str(tmp_path)]) == 1
    assert "pointseg prepare s3dis" in capsys.readouterr().err
    write_cache(tmp_path / "cache", ROOMS)
    rc = main(
        ["blocks", "s3dis", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "b"),
         "--split", "test", "--num-point", "128", "--areas", "5", "--no-progress"]
    )  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "test:" in out and "cover_all=True" in out
    ds = S3DISBlocks(tmp_path / "b", split="test")
    assert set(ds.rooms) == {"Area_5_office_1"} and ds.data.shape[1] == 128
    rc = main(["blocks", "s3dis", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "b"),
               "--areas", "7", "--no-progress"])  # fmt: skip
    assert rc == 1 and "no rooms in areas [7]" in capsys.readouterr().err


@pytest.mark.parametrize("block_size,stride", [(1.0, 0.5), (0.7, 0.3), (0.5, 0.1), (1.0, 1.5)])
def test_boundary_points_match_pointnet_loop(block_size, stride):
    # every coordinate on a 0.1 grid: many points sit exactly on (inexact float) column edges
    g = np.arange(0, 2.1, 0.1)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    xyz = np.stack([xx.ravel(), yy.ravel(), np.zeros(xx.size)], axis=1)
    z = np.zeros((len(xyz), 3), np.uint8)
    b = room_to_blocks(
        xyz, z, z[:, 0], block_size=block_size, stride=stride, num_point=1024, min_points=1,
        rng=0, cover_all=True,
    )  # fmt: skip
    ref = pointnet_blocks(xyz, block_size, stride, 1)
    assert [tuple(c) for c in b.cell] == [c for c, _ in ref]
    for k, (_, members) in enumerate(ref):
        np.testing.assert_array_equal(np.unique(b.index[k]), members)


@pytest.mark.slow
def test_real_rooms_end_to_end(tmp_path):
    """prepare → blocks (both splits) → loaders on the four real sample rooms."""
    if not RAW.is_dir():
        pytest.skip("shared S3DIS sample data absent")
    from pointseg.cli import main
    from pointseg.data.s3dis import list_rooms, load_room

    cache, out = tmp_path / "cache", tmp_path / "blocks"
    assert main(["prepare", "s3dis", "--raw", str(RAW), "--out", str(cache), "--no-progress"]) == 0
    assert main(["blocks", "s3dis", "--cache", str(cache), "--out", str(out), "--no-progress"]) == 0
    train = S3DISBlocks(out, split="train", exclude_areas=[5])
    test = S3DISBlocks(out, split="test", areas=[5])
    assert {r[:7] for r in train.rooms} == {"Area_1_"} and {r[:7] for r in test.rooms} == {
        "Area_5_"
    }
    manifest = json.loads((out / "test" / "manifest.json").read_text())
    stats = {r["room"]: r for r in manifest["rooms"]}
    for entry in list_rooms(cache, ["Area_5"]):
        name = f"{entry['area']}_{entry['room']}"
        rows = [i for i, r in enumerate(test.rooms) if r == name]
        covered = np.zeros(entry["points"], bool)
        covered[test.index[rows].ravel()] = True
        # every point is in a test block except the reported points of dropped blocks
        assert entry["points"] - covered.sum() == stats[name]["dropped_points"]
        room = load_room(entry["path"])
        np.testing.assert_array_equal(test.labels[rows], room["label"][test.index[rows]])


def test_read_blocks_manifest(tmp_path):
    """The one reader of a block folder's manifest.json: None when absent or cut short."""
    from pointseg.data.blocks import read_blocks_manifest

    assert read_blocks_manifest(tmp_path / "nothing") is None
    write_cache(tmp_path / "cache", ROOMS)
    m = make_s3dis_blocks(
        tmp_path / "cache", tmp_path / "out", split="test", num_point=64, progress=False
    )
    folder = tmp_path / "out" / "test"
    assert read_blocks_manifest(folder) == json.loads(json.dumps(m))
    assert read_blocks_manifest(folder)["params"]["num_point"] == 64
    (folder / "manifest.json").write_text('{"params": ')  # a crash mid-write (pre-atomic copies)
    assert read_blocks_manifest(folder) is None
    (folder / "manifest.json").write_text("[1, 2]")
    assert read_blocks_manifest(folder) is None
