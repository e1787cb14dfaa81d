"""pointseg.data.ply: one PLY reader/writer, checked against Open3D and hand-written files."""

from __future__ import annotations

import numpy as np
import pytest

from pointseg.data.ply import read_ply, read_ply_elements, write_ply
from pointseg.errors import DataError


def _cloud(n: int = 257, seed: int = 0):
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 3)).astype(np.float32) * 10
    rgb = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    label = rng.integers(0, 13, size=n).astype(np.int32)
    conf = rng.random(n).astype(np.float32)
    return xyz, rgb, label, conf


def test_roundtrip_keeps_every_property_and_dtype(tmp_path):
    xyz, rgb, label, conf = _cloud()
    pred = (label + 1) % 13
    path = tmp_path / "a.ply"
    write_ply(path, xyz, rgb=rgb, label=label, pred=pred.astype(np.uint8), confidence=conf)
    got = read_ply(path)
    assert set(got) == {"xyz", "rgb", "label", "pred", "confidence"}
    np.testing.assert_array_equal(got["xyz"], xyz)
    assert got["xyz"].dtype == np.float32
    np.testing.assert_array_equal(got["rgb"], rgb)
    np.testing.assert_array_equal(got["label"], label)
    assert got["label"].dtype == np.int32
    np.testing.assert_array_equal(got["pred"], pred)
    assert got["pred"].dtype == np.uint8
    np.testing.assert_array_equal(got["confidence"], conf)
    # nothing but the file itself is left in the folder (atomic write cleans up)
    assert [p.name for p in tmp_path.iterdir()] == ["a.ply"]


def test_float64_coordinates_keep_their_precision(tmp_path):
    xyz = np.array([[500000.123456, 4100000.654321, 12.5]], dtype=np.float64)
    write_ply(tmp_path / "utm.ply", xyz)
    got = read_ply(tmp_path / "utm.ply")["xyz"]
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, xyz)


def test_open3d_reads_what_we_write_and_we_read_what_it_writes(tmp_path):
    o3d = pytest.importorskip("open3d")
    xyz, rgb, label, _ = _cloud(100)
    write_ply(tmp_path / "ours.ply", xyz, rgb=rgb, label=label)
    pcd = o3d.io.read_point_cloud(str(tmp_path / "ours.ply"))
    np.testing.assert_allclose(np.asarray(pcd.points), xyz, rtol=0, atol=0)
    np.testing.assert_allclose(np.asarray(pcd.colors) * 255, rgb, atol=1e-4)

    theirs = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.astype(np.float64)))
    theirs.colors = o3d.utility.Vector3dVector(rgb / 255.0)
    for ascii_ in (False, True):
        out = tmp_path / f"theirs_{ascii_}.ply"
        assert o3d.io.write_point_cloud(str(out), theirs, write_ascii=ascii_)
        got = read_ply(out)
        # Open3D's ASCII writer prints 6 significant digits
        np.testing.assert_allclose(got["xyz"], xyz, rtol=1e-5 if ascii_ else 0, atol=1e-6)
        np.testing.assert_array_equal(got["rgb"], rgb)


def test_ascii_and_big_endian_files(tmp_path):
    ascii_text = (
        "ply\nformat ascii 1.0\ncomment hand written\nelement vertex 3\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nproperty int label\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
        "0 0 0 255 0 0 3\n1 0 0 0 255 0 7\n0 1 0.5 0 0 255 12\n3 0 1 2\n"
    )
    (tmp_path / "a.ply").write_text(ascii_text)
    got = read_ply(tmp_path / "a.ply")
    np.testing.assert_array_equal(got["xyz"], [[0, 0, 0], [1, 0, 0], [0, 1, 0.5]])
    np.testing.assert_array_equal(got["rgb"], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])
    np.testing.assert_array_equal(got["label"], [3, 7, 12])
    assert got["label"].dtype == np.int32
    fmt, elements, values, lines = read_ply_elements(tmp_path / "a.ply")
    assert fmt == "ascii" and [e["name"] for e in elements] == ["vertex", "face"]
    np.testing.assert_array_equal(np.asarray(values["face"]["vertex_indices"]).ravel(), [0, 1, 2])

    xyz = np.arange(12, dtype=">f4").reshape(4, 3)
    header = (
        "ply\nformat binary_big_endian 1.0\nelement vertex 4\n"
        "property float x\nproperty float y\nproperty float z\nend_header\n"
    )
    (tmp_path / "be.ply").write_bytes(header.encode() + xyz.tobytes())
    np.testing.assert_array_equal(read_ply(tmp_path / "be.ply")["xyz"], xyz.astype(np.float32))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"solid cube\n", "expected 'ply'"),
        (b"ply\nformat ascii 1.0\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n", "no 'vertex' element"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nend_header\n1 2\n", "no scalar z"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nproperty float y\nproperty float z\nend_header\n\x00\x00", "file ends inside"),
        (b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n4 five 6\n", ":9:"),
    ],
)  # fmt: skip
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    with pytest.raises(DataError, match="bad.ply") as err:
        read_ply(path)
    assert message in str(err.value)


def test_write_rejects_mismatched_shapes(tmp_path):
    xyz, rgb, label, _ = _cloud(10)
    with pytest.raises(ValueError, match="label"):
        write_ply(tmp_path / "x.ply", xyz, label=label[:5])
    with pytest.raises(ValueError, match="rgb"):
        write_ply(tmp_path / "x.ply", xyz, rgb=rgb[:, :2])
    assert not list(tmp_path.iterdir())
