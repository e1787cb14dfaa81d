"""pointseg.data.mesh: the .off / .ply mesh readers and area-uniform surface sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pointseg.data.mesh import read_mesh, sample_surface
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
