"""ModelNet40: the class list, ModelNetH5, ModelNetMeshes (mesh reading itself: test_mesh.py)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pointseg.data import modelnet as M
from pointseg.data.augment import ShapeAugment
from pointseg.data.modelnet import (
    MODELNET40_CLASSES,
    ModelNetH5,
    ModelNetMeshes,
    read_mesh,
    sample_surface,
)
from pointseg.errors import DataError

from .test_mesh import MESHES, POLYS, SQUARE, needs_meshes, write_off, write_ply


def test_class_list():
    assert len(MODELNET40_CLASSES) == 40 and len(set(MODELNET40_CLASSES)) == 40
    assert list(MODELNET40_CLASSES) == sorted(MODELNET40_CLASSES)  # standard alphabetical order
    idx = {c: i for i, c in enumerate(MODELNET40_CLASSES)}
    assert (idx["airplane"], idx["chair"], idx["toilet"], idx["xbox"]) == (0, 8, 35, 39)


def test_truncated_binary_ply_and_zero_area(tmp_path):
    p = write_ply(tmp_path / "t.ply", SQUARE, POLYS, "binary_little_endian")
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(DataError, match="t.ply: file ends inside element 'face'"):
        read_mesh(p)
    flat = np.zeros((3, 3))
    with pytest.raises(ValueError, match="zero or non-finite total surface area"):
        sample_surface(flat, np.array([[0, 1, 2]]), 10, 0)
    root = tmp_path / "mn"
    (root / "cone" / "train").mkdir(parents=True)
    write_off(root / "cone" / "train" / "cone_0001.off", flat, [[0, 1, 2]])
    with pytest.raises(
        DataError, match=r"cone_0001.off: mesh has zero or non-finite total surface"
    ):
        ModelNetMeshes(root, "train", 16, cache=False, progress=False)


# ------------------------------------------------------------------------------ ModelNetH5


def write_h5_split(root: Path, split: str, sizes: list[int], seed: int = 0, normals: bool = False):
    rng = np.random.default_rng(seed)
    data, labels, names = [], [], []
    for i, n in enumerate(sizes):
        d = rng.standard_normal((n, 2048, 3)).astype(np.float32)
        lab = rng.integers(0, 40, (n, 1)).astype(np.uint8)
        with h5py.File(root / f"ply_data_{split}{i}.h5", "w") as f:
            f.create_dataset("data", data=d)
            f.create_dataset("label", data=lab)
            if normals:
                f.create_dataset("normal", data=-d)
        data.append(d)
        labels.append(lab[:, 0])
        names.append(f"data/modelnet40_ply_hdf5_2048/ply_data_{split}{i}.h5")
    (root / f"{split}_files.txt").write_text("\n".join(names) + "\n")
    return np.concatenate(data), np.concatenate(labels)


def test_modelnet_h5(tmp_path):
    data, labels = write_h5_split(tmp_path, "train", [3, 2], normals=True)
    write_h5_split(tmp_path, "test", [2], seed=1)
    ds = ModelNetH5(tmp_path, "train", num_points=1024)
    assert len(ds) == 5 and ds.classes == MODELNET40_CLASSES
    x, y = ds[4]
    assert x.shape == (1024, 3) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.shape == () and int(y) == labels[4]
    np.testing.assert_array_equal(x.numpy(), data[4, :1024])  # first num_points, as DGCNN
    assert len(ModelNetH5(tmp_path, "test")) == 2
    names = [f"c{i}" for i in range(40)]
    (tmp_path / "shape_names.txt").write_text("\n".join(names) + "\n")
    assert ModelNetH5(tmp_path, "test").classes == tuple(names)  # published label order
    (tmp_path / "shape_names.txt").unlink()
    xn, _ = ModelNetH5(tmp_path, "train", num_points=512, use_normals=True)[0]
    np.testing.assert_array_equal(xn.numpy(), np.concatenate([data[0, :512], -data[0, :512]], 1))
    with pytest.raises(DataError, match="stores 2048 points per shape, fewer than num_points=4096"):
        ModelNetH5(tmp_path, "train", num_points=4096)
    with pytest.raises(DataError, match="no ply_data_train"):
        ModelNetH5(tmp_path / "nothing", "train")
    with h5py.File(tmp_path / "ply_data_test0.h5", "a") as f:
        f["label"][0, 0] = 40
    with pytest.raises(DataError, match=r"ply_data_test0.h5: labels must be in 0..39"):
        ModelNetH5(tmp_path, "test")


# ------------------------------------------------------------------------------ ModelNetMeshes


def mesh_tree(root: Path) -> Path:
    layout = {
        "chair/train": ["chair_0001.off", "chair_0002.off"],
        "toilet/train": ["toilet_0001.off"],
        "bathtub/train": ["bathtub_0154.ply"],
        "chair/test": ["chair_0002.off"],
    }
    for sub, files in layout.items():
        (root / sub).mkdir(parents=True)
        for f in files:
            os.symlink(MESHES / f, root / sub / f)
    return root


def test_modelnet_meshes_sample_once_and_cache(tmp_path, monkeypatch):
    needs_meshes()
    root = mesh_tree(tmp_path / "ModelNet")
    ds = ModelNetMeshes(root, "train", num_points=256, progress=False)
    assert ds.classes == ("bathtub", "chair", "toilet")  # sorted class folders
    assert [f.name for f in ds.files] == [
        "bathtub_0154.ply", "chair_0001.off", "chair_0002.off", "toilet_0001.off",
    ]  # fmt: skip
    np.testing.assert_array_equal(ds.labels, [0, 1, 1, 2])
    x, y = ds[1]
    assert x.shape == (256, 3) and x.dtype == torch.float32 and int(y) == 1
    assert np.linalg.norm(ds.points, axis=2).max(axis=1) == pytest.approx(1.0, abs=1e-5)
    cache = root / ".pointseg_cache" / "modelnet_train_256pts_seed0.npz"
    assert cache.is_file()

    # A second dataset loads the cache: no mesh is read again, same points.
    def boom(path):
        raise AssertionError(f"resampled {path}")

    monkeypatch.setattr(M, "read_mesh", boom)
    again = ModelNetMeshes(root, "train", num_points=256, progress=False)
    np.testing.assert_array_equal(again.points, ds.points)
    monkeypatch.undo()

    # Adding a mesh invalidates the cache; existing shapes keep their (seeded) points.
    os.symlink(MESHES / "toilet_0002.off", root / "toilet" / "train" / "toilet_0002.off")
    grown = ModelNetMeshes(root, "train", num_points=256, progress=False)
    assert len(grown) == 5
    np.testing.assert_array_equal(grown.points[:4], ds.points)

    # Explicit class list: label order follows it; read-only / no-cache mode works.
    sub = ModelNetMeshes(root, "test", 64, classes=["chair"], cache=False, progress=False)
    assert len(sub) == 1 and sub.classes == ("chair",)
    par = ModelNetMeshes(root, "train", 256, cache=False, progress=False, workers=2)
    np.testing.assert_array_equal(par.points, grown.points)  # same seeds in worker processes
    aug = ModelNetMeshes(root, "test", 64, augment=ShapeAugment(), cache=False, progress=False)
    assert not torch.equal(aug[0][0], torch.from_numpy(aug.points[0]))
    with pytest.raises(DataError, match=r"missing class folders \['sofa/train'\]"):
        ModelNetMeshes(root, "train", 64, classes=["sofa"], cache=False)
    with pytest.raises(DataError, match="no class folders with a 'train' subfolder"):
        ModelNetMeshes(tmp_path, "train", 64, cache=False)
