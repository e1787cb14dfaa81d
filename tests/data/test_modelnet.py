"""ModelNet40: mesh readers (.off / .ply), surface sampling, ModelNetH5, ModelNetMeshes."""

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

MESHES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "modelnet"
# (file, vertices, faces after triangulation) — counts from the files' headers
REAL = [
    ("chair_0001.off", 2382, 2234),
    ("chair_0002.off", 192, 96),
    ("toilet_0001.off", 3739, 6341),
    ("bathtub_0154.ply", 1494, 1194),
]


def needs_meshes():
    if not MESHES.is_dir():
        pytest.skip("shared ModelNet sample meshes absent")


def write_off(path: Path, v: np.ndarray, polys: list, header: str = "OFF") -> Path:
    lines = [header.rstrip("\n"), f"{len(v)} {len(polys)} 0"]
    lines += [" ".join(repr(float(c)) for c in row) for row in v]
    lines += [" ".join(str(int(i)) for i in [len(p), *p]) for p in polys]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ply(
    path: Path, v: np.ndarray, polys: list, fmt: str, vtype="float", ctype="uchar", itype="int"
):
    """Minimal PLY writer used to cross-check the reader on every format."""
    np_t = {"float": "f4", "double": "f8", "uchar": "u1", "int": "i4", "uint": "u4", "ushort": "u2"}
    head = (
        f"ply\nformat {fmt} 1.0\ncomment test\nelement vertex {len(v)}\n"
        f"property {vtype} x\nproperty {vtype} y\nproperty {vtype} z\n"
        f"element face {len(polys)}\nproperty list {ctype} {itype} vertex_indices\nend_header\n"
    )
    if fmt == "ascii":
        body = "".join(" ".join(repr(float(c)) for c in row) + "\n" for row in v)
        body += "".join(" ".join(map(str, [len(p), *p])) + "\n" for p in polys)
        path.write_bytes(head.encode() + body.encode())
        return path
    e = "<" if fmt == "binary_little_endian" else ">"
    out = [head.encode(), np.asarray(v, dtype=e + np_t[vtype]).tobytes()]
    for p in polys:
        out.append(np.array([len(p)], dtype=e + np_t[ctype]).tobytes())
        out.append(np.asarray(p, dtype=e + np_t[itype]).tobytes())
    path.write_bytes(b"".join(out))
    return path


def test_class_list():
    assert len(MODELNET40_CLASSES) == 40 and len(set(MODELNET40_CLASSES)) == 40
    assert list(MODELNET40_CLASSES) == sorted(MODELNET40_CLASSES)  # standard alphabetical order
    idx = {c: i for i, c in enumerate(MODELNET40_CLASSES)}
    assert (idx["airplane"], idx["chair"], idx["toilet"], idx["xbox"]) == (0, 8, 35, 39)


@pytest.mark.parametrize("name,nv,nf", REAL)
def test_real_meshes_load_and_sample(name, nv, nf):
    needs_meshes()
    v, f = read_mesh(MESHES / name)
    assert v.shape == (nv, 3) and v.dtype == np.float64
    assert f.shape == (nf, 3) and f.dtype == np.int64
    assert f.min() >= 0 and f.max() < nv
    pts = sample_surface(v, f, 1024, np.random.default_rng(0))
    assert pts.shape == (1024, 3) and pts.dtype == np.float32
    norms = np.linalg.norm(pts, axis=1)
    assert norms.max() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(pts.mean(axis=0), 0, atol=1e-5)


def test_binary_ply_equals_ascii_and_off_rewrite(tmp_path):
    needs_meshes()
    v, f = read_mesh(MESHES / "bathtub_0154.ply")
    for fmt in ("ascii", "binary_big_endian", "binary_little_endian"):
        v2, f2 = read_mesh(write_ply(tmp_path / f"{fmt}.ply", v, f.tolist(), fmt, vtype="double"))
        np.testing.assert_array_equal(v2, v)
        np.testing.assert_array_equal(f2, f)
    v3, f3 = read_mesh(write_off(tmp_path / "b.off", v, f.tolist()))
    np.testing.assert_array_equal(v3, v)
    np.testing.assert_array_equal(f3, f)


SQUARE = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 1.5, 0]], float)
POLYS = [[0, 1, 2, 3], [3, 2, 4]]  # a quad and a triangle
FANNED = [[0, 1, 2], [0, 2, 3], [3, 2, 4]]


@pytest.mark.parametrize(
    "writer",
    [
        lambda p: write_off(p.with_suffix(".off"), SQUARE, POLYS),
        lambda p: write_ply(p.with_suffix(".ply"), SQUARE, POLYS, "ascii"),
        lambda p: write_ply(p.with_suffix(".ply"), SQUARE, POLYS, "binary_little_endian", ctype="uchar", itype="uint"),
        lambda p: write_ply(p.with_suffix(".ply"), SQUARE, POLYS, "binary_big_endian", "double", "int", "ushort"),
    ],
)  # fmt: skip
def test_mixed_polygons_fan_triangulated(tmp_path, writer):
    v, f = read_mesh(writer(tmp_path / "m"))
    np.testing.assert_array_equal(v, SQUARE)
    np.testing.assert_array_equal(f, FANNED)


def test_glued_off_header_and_comments(tmp_path):
    p = tmp_path / "glued.off"
    p.write_text("OFF4 2 0\n# a comment\n0 0 0\n1 0 0\n\n1 1 0\n0 1 0\n3 0 1 2\n3 0 2 3\n")
    v, f = read_mesh(p)
    assert v.shape == (4, 3)
    np.testing.assert_array_equal(f, [[0, 1, 2], [0, 2, 3]])
    p.write_text("OFF 4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n")  # counts on header line
    assert read_mesh(p)[1].shape == (2, 3)


def test_area_weighted_sampling():
    # two triangles, areas 3 : 1, on either side of x = 0
    v = np.array([[0, 0, 0], [3, 0, 0], [0, 2, 0], [0, 0, 0], [-1, 0, 0], [0, 2, 0]], float)
    f = np.array([[0, 1, 2], [3, 4, 5]])
    pts = sample_surface(v, f, 40000, np.random.default_rng(0), normalize=False)
    frac = (pts[:, 0] > 0).mean()
    assert frac == pytest.approx(0.75, abs=0.01)  # binomial sd ≈ 0.002
    # uniform inside a triangle: the mean of its samples is its centroid
    right = pts[pts[:, 0] > 0]
    np.testing.assert_allclose(right.mean(axis=0), [1, 2 / 3, 0], atol=0.02)
    # barycentric sampling stays inside the triangle: x/3 + y/2 <= 1
    assert (right[:, 0] / 3 + right[:, 1] / 2 <= 1 + 1e-6).all()
    # normalised: centroid 0, max norm 1
    n = sample_surface(v, f, 2048, 0)
    assert np.linalg.norm(n, axis=1).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(n, sample_surface(v, f, 2048, 0))  # seeded


@pytest.mark.parametrize(
    "name,text,match",
    [
        ("hdr.off", "OOF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", r"hdr.off:1: expected 'OFF'"),
        ("cnt.off", "OFF\n3 2 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", r"cnt.off:2: header says 3 vertices and 2 faces"),
        ("cnt2.off", "OFF\nthree 1 0\n", r"cnt2.off:2: expected 'n_vertices n_faces"),
        ("idx.off", "OFF\n3 2 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n3 0 1 3\n", r"idx.off:7: face 1 has vertex index out of range 0..2"),
        ("nan.off", "OFF\n3 1 0\n0 0 0\nnan 0 0\n0 1 0\n3 0 1 2\n", r"nan.off: vertex 1 has a non-finite"),
        ("vtx.off", "OFF\n3 1 0\n0 0 0\n1 0\n0 1 0\n3 0 1 2\n", r"vtx.off:4: expected a vertex line"),
        ("short.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n4 0 1 2\n", r"short.off:6: face says 4 vertices but lists 3"),
        ("asc.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
         "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 5\n",
         r"asc.ply:13: face 0 has vertex index out of range"),
        ("nof.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
         "property float z\nend_header\n0 0 0\n", r"needs 'vertex' and 'face' elements"),
        ("fmt.ply", "ply\nformat binary_middle_endian 1.0\nend_header\n", r"fmt.ply:2: unknown PLY format"),
        ("x.obj", "v 0 0 0\n", r"unknown mesh format '.obj'"),
    ],
)  # fmt: skip
def test_bad_meshes(tmp_path, name, text, match):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(DataError, match=match):
        read_mesh(p)


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
