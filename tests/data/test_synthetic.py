"""Synthetic S3DIS rooms and ModelNet meshes (pointseg.data.synthetic, `pointseg synth`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pointseg.cli import main
from pointseg.data.s3dis import CLASSES, parse_room
from pointseg.data.synthetic import (
    BASE_DENSITY,
    JITTER,
    MODELNET_SYNTH_CLASSES,
    ROOM_TYPES,
    annotation_order,
    format_points,
    make_mesh,
    make_room,
    room_plan,
    synth_modelnet,
    synth_s3dis,
)
from pointseg.data.synthetic.sampling import SurfaceSampler
from pointseg.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

# One line of the raw Stanford text format: 3 coordinates with 3 decimals, 3 integer colours.
LINE_RE = re.compile(rb"^-?\d+\.\d{3} -?\d+\.\d{3} -?\d+\.\d{3} \d{1,3} \d{1,3} \d{1,3}$")
# Several sigma of the sensor jitter: how far a point may stray from its surface.
TOL = 6 * JITTER


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _room_arrays(room):
    xyz = np.concatenate([o.xyz for o in room.objects])
    lab = np.concatenate([np.full(len(o.xyz), CLASSES.index(o.cls)) for o in room.objects])
    return xyz, lab


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("synth")
    rooms = synth_s3dis(out, areas=2, rooms_per_area=2, seed=3, density=0.25, progress=False)
    return out, rooms


@pytest.fixture(scope="module")
def rooms_by_type() -> list:
    """Two in-memory rooms of every type (origin 0, so the room box is [0, L] × [0, W] × [0, H])."""
    return [
        make_room(np.random.default_rng([7, k]), t, density=0.4)
        for t in ROOM_TYPES
        for k in range(2)
    ]


# ---------------------------------------------------------------------------------------------
# Layout, format, determinism
# ---------------------------------------------------------------------------------------------


def test_layout_names_and_every_area_has_all_13_classes(small_set):
    out, rooms = small_set
    assert sorted(p.name for p in out.iterdir()) == ["Area_1", "Area_2"]
    assert len(rooms) == 4
    for area in ("Area_1", "Area_2"):
        names = {p.name for p in (out / area).iterdir()}
        assert names == {name for _, _, name in room_plan(int(area[-1]), 2)}
        prefixes = {f.name.split("_")[0] for f in (out / area).glob("*/Annotations/*.txt")}
        assert prefixes == set(CLASSES), f"{area} misses {set(CLASSES) - prefixes}"
    for room in rooms:
        assert re.fullmatch(r"[A-Za-z]+_\d+", room.name)
        # every room on its own holds all 13 classes, so any area does
        assert {f.name.split("_")[0] for f in (room / "Annotations").iterdir()} == set(CLASSES)
        for f in (room / "Annotations").iterdir():
            assert re.fullmatch(r"[a-z]+_[1-9]\d*\.txt", f.name)


def test_room_plan_names_count_per_type():
    plan = room_plan(1, 9)
    names = [n for _, _, n in plan]
    assert len(set(names)) == 9
    assert names[0] == "office_1" and "office_2" in names and "office_3" in names
    assert {t for _, t, _ in plan} == set(ROOM_TYPES)


def test_text_format_matches_the_real_data(small_set):
    _, rooms = small_set
    f = rooms[0] / "Annotations" / "wall_1.txt"
    lines = f.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(LINE_RE.match(line) for line in lines[:-1])
    assert b"-0.000" not in f.read_bytes()
    a = np.loadtxt(f)
    assert a.ndim == 2 and a.shape[1] == 6
    assert np.all(a[:, 3:] == np.rint(a[:, 3:])) and a[:, 3:].min() >= 0 and a[:, 3:].max() <= 255
    real = SHARED / "s3dis_raw" / "Area_1" / "conferenceRoom_1" / "Annotations" / "wall_1.txt"
    if not real.exists():
        pytest.skip(f"real sample data not found at {real}")
    with open(real, "rb") as fh:
        real_lines = [fh.readline().rstrip(b"\n") for _ in range(200)]
    assert all(LINE_RE.match(line) for line in real_lines)  # the same regex fits the real file


def test_format_points_reference():
    xyz = np.array([[-15.609, 39.505, 2.214], [0.0, 0.001, 1000.0]])
    rgb = np.array([[71, 64, 54], [0, 255, 9]], dtype=np.uint8)
    assert (
        format_points(xyz, rgb) == "-15.609 39.505 2.214 71 64 54\n0.000 0.001 1000.000 0 255 9\n"
    )


def test_room_file_is_the_concatenation_of_annotations_in_parse_order(small_set):
    _, rooms = small_set
    for room in rooms:
        ann = sorted((room / "Annotations").iterdir(), key=lambda p: annotation_order(p.name))
        concat = b"".join(p.read_bytes() for p in ann)
        assert (room / f"{room.name}.txt").read_bytes() == concat
    # parse_room reads the files in the same (natural) order: its points are the room file's
    data, issues = parse_room(rooms[0])
    assert issues == []
    whole = np.loadtxt(rooms[0] / f"{rooms[0].name}.txt")
    np.testing.assert_array_equal(data.xyz, whole[:, :3].astype(np.float32))
    np.testing.assert_array_equal(data.rgb, whole[:, 3:].astype(np.uint8))
    counts = {p.stem: sum(1 for _ in open(p, "rb")) for p in (rooms[0] / "Annotations").iterdir()}
    assert {o["file"][:-4]: o["points"] for o in data.objects} == counts
    hist = np.bincount(data.label, minlength=13)
    for i, name in enumerate(CLASSES):
        assert hist[i] == sum(n for stem, n in counts.items() if stem.split("_")[0] == name)
    assert np.all(hist > 0)


def test_same_seed_same_bytes_different_seed_differs(tmp_path, small_set):
    out, _ = small_set
    again = tmp_path / "again"
    synth_s3dis(again, areas=2, rooms_per_area=2, seed=3, density=0.25, progress=False)
    assert _files(again) == _files(out)
    # rooms are pure functions of (seed, area, index): a subset of areas writes the same bytes
    only2 = tmp_path / "only2"
    synth_s3dis(only2, areas=[2], rooms_per_area=2, seed=3, density=0.25, progress=False)
    assert _files(only2 / "Area_2") == _files(out / "Area_2")
    other = tmp_path / "other"
    synth_s3dis(other, areas=1, rooms_per_area=1, seed=4, density=0.25, progress=False)
    name = room_plan(1, 1)[0][2]
    a = (out / "Area_1" / name / f"{name}.txt").read_bytes()
    b = (other / "Area_1" / name / f"{name}.txt").read_bytes()
    assert a != b


def test_rewrite_removes_stale_annotations(tmp_path):
    synth_s3dis(tmp_path, areas=1, rooms_per_area=1, seed=0, density=0.2, progress=False)
    room = tmp_path / "Area_1" / room_plan(1, 1)[0][2]
    stale = room / "Annotations" / "chair_99.txt"
    stale.write_text("0.000 0.000 0.000 1 2 3\n")
    (room / "Annotations" / "notes.md").write_text("user file")
    synth_s3dis(tmp_path, areas=1, rooms_per_area=1, seed=0, density=0.2, progress=False)
    assert not stale.exists()
    assert (room / "Annotations" / "notes.md").exists()  # only <class>_<i>.txt files are ours
    ann = sorted(
        (p for p in (room / "Annotations").iterdir() if p.suffix == ".txt"),
        key=lambda p: annotation_order(p.name),
    )
    assert (room / f"{room.name}.txt").read_bytes() == b"".join(p.read_bytes() for p in ann)


def test_no_temporary_files_left(small_set):
    out, _ = small_set
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="areas"):
        synth_s3dis(tmp_path, areas=0, progress=False)
    with pytest.raises(ConfigError, match="rooms_per_area"):
        synth_s3dis(tmp_path, rooms_per_area=0, progress=False)
    with pytest.raises(ConfigError, match="density"):
        synth_s3dis(tmp_path, density=float("nan"), progress=False)
    with pytest.raises(ConfigError, match="density"):
        synth_s3dis(tmp_path, density=-1.0, progress=False)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        synth_s3dis(f, areas=1, rooms_per_area=1, progress=False)
    with pytest.raises(ConfigError, match="room type"):
        make_room(np.random.default_rng(0), "kitchen")


# ---------------------------------------------------------------------------------------------
# Geometry and density
# ---------------------------------------------------------------------------------------------


def test_room_sizes_and_point_counts(rooms_by_type):
    for room in rooms_by_type:
        t = ROOM_TYPES[room.room_type]
        L, W, H = room.size
        assert t.length[0] <= L <= t.length[1] and t.width[0] <= W <= t.width[1]
        assert t.height[0] <= H <= t.height[1]
        assert {o.cls for o in room.objects} == set(CLASSES)
        xyz, _ = _room_arrays(room)
        assert xyz.min(axis=0)[2] > -TOL and xyz.max(axis=0)[2] < H + TOL
        assert np.all(xyz[:, 0] > -0.25) and np.all(xyz[:, 0] < L + 0.25)  # recesses ≤ 0.2 m
        assert np.all(xyz[:, 1] > -0.25) and np.all(xyz[:, 1] < W + 0.25)
        # coordinates are written with 3 decimals: they are exact multiples of 1 mm
        assert np.allclose(xyz * 1000, np.rint(xyz * 1000), atol=1e-6)


def test_default_density_gives_20k_to_60k_points_per_room():
    counts = [
        make_room(np.random.default_rng([11, k]), t).points()
        for k, t in enumerate(["office", "conferenceRoom", "hallway", "storage"])
    ]
    assert all(20_000 <= n <= 60_000 for n in counts), counts
    half = [
        make_room(np.random.default_rng([11, k]), t, density=0.5).points()
        for k, t in enumerate(["office", "conferenceRoom", "hallway", "storage"])
    ]
    # same seed → same room size (drawn first); half the density → ~half the points
    assert 0.4 < sum(half) / sum(counts) < 0.6


def test_sampler_density_is_per_square_metre():
    s = SurfaceSampler(np.random.default_rng(0), 500.0)
    pts = s.rect([1, 2, 3], [4, 0, 0], [0, 0, 2.5])  # 10 m²
    assert abs(len(pts) - 5000) < 4 * np.sqrt(5000)
    assert np.all(pts[:, 1] == 2) and pts[:, 0].min() >= 1 and pts[:, 0].max() <= 5
    box = s.box([0, 0, 0], [1, 2, 3], skip="z0")  # 2 + 6 + 3 + 3·... = 22 − 2 (bottom) m²
    assert abs(len(box) - 500 * 20) < 4 * np.sqrt(500 * 20)
    assert box[:, 2].min() > 0 or np.all(box[box[:, 2] == 0][:, 0] == 0)  # no bottom face
    cyl = s.cylinder(0, 0, 0, 1.0, 0.5, 0.5)  # lateral area π
    assert abs(len(cyl) - 500 * np.pi) < 4 * np.sqrt(500 * np.pi)
    np.testing.assert_allclose(np.hypot(cyl[:, 0], cyl[:, 1]), 0.5)
    assert BASE_DENSITY > 0


def _wall_distance(xyz, L, W):
    return np.minimum.reduce([np.abs(xyz[:, 0]), np.abs(L - xyz[:, 0]), np.abs(xyz[:, 1]),
                              np.abs(W - xyz[:, 1])])  # fmt: skip


def test_classes_are_geometrically_plausible(rooms_by_type):
    # Thresholds "reaches the floor / ceiling" allow 0.15 m: at low density a thin part has few
    # points, and none may fall in the lowest few cm.
    for room in rooms_by_type:
        L, W, H = room.size
        by = {}
        for o in room.objects:
            by.setdefault(o.cls, []).append(o.xyz)
        z = {c: np.concatenate(v)[:, 2] for c, v in by.items()}
        assert np.abs(z["floor"]).max() < TOL  # floor at the bottom
        assert np.abs(z["ceiling"] - H).max() < TOL  # ceiling at the top
        wall = np.concatenate(by["wall"])
        assert _wall_distance(wall, L, W).max() < TOL  # walls in the wall planes
        for b in by["beam"]:  # beams hang 0.2-0.45 m under the ceiling
            assert b[:, 2].min() > H - 0.45 - TOL and b[:, 2].max() < H + TOL
        for c in by["column"]:  # columns span floor to ceiling, against a wall
            assert c[:, 2].min() < 0.15 and c[:, 2].max() > H - 0.15
            assert _wall_distance(c, L, W).min() < TOL + 0.01
        for t in by["table"]:  # tops at table height (coffee tables 0.4-0.5, desks ≤ 0.78)
            assert 0.38 < t[:, 2].max() < 0.8
            assert t[:, 2].min() < 0.15  # legs reach the floor
        for c in by["chair"]:
            assert c[:, 2].min() < 0.15 and 0.75 < c[:, 2].max() < 1.1  # on the floor
        for s in by["sofa"]:
            assert s[:, 2].max() < 0.9 and _wall_distance(s, L, W).min() < 0.05
        for b in by["board"]:  # thin panels hanging on a wall
            assert _wall_distance(b, L, W).max() < 0.1  # incl. the marker tray
            assert b[:, 2].min() > 0.8 and b[:, 2].max() < 2.4
        for d in by["door"]:  # doors sit in the wall planes, from the floor up to ≤ 2.3 m
            assert _wall_distance(d, L, W).max() < 0.1
            assert d[:, 2].min() < 0.15 and d[:, 2].max() < 2.3
        for w in by["window"]:  # windows are recessed into wall openings
            assert _wall_distance(w, L, W).max() < 0.25
            assert w[:, 2].min() > 0.6 and w[:, 2].max() < H - 0.3
        for b in by["bookcase"]:
            assert 1.5 < b[:, 2].max() < 2.25 and _wall_distance(b, L, W).min() < 0.05


def test_openings_and_hidden_surfaces_are_carved(rooms_by_type):
    for room in rooms_by_type:
        wall = np.concatenate([o.xyz for o in room.objects if o.cls == "wall"])
        ceiling = np.concatenate([o.xyz for o in room.objects if o.cls == "ceiling"])
        for o in room.objects:
            lo, hi = o.xyz.min(axis=0), o.xyz.max(axis=0)
            if o.cls in ("door", "window", "board"):
                # shrink the box along the wall and in z (frames), keep the normal direction
                thin = int(np.argmin((hi - lo)[:2]))
                along = 1 - thin
                lo2, hi2 = lo.copy(), hi.copy()
                lo2[along] += 0.1
                hi2[along] -= 0.1
                lo2[2] += 0.1
                hi2[2] -= 0.1
                inside = np.all((wall > lo2) & (wall < hi2), axis=1)
                assert not inside.any(), f"{room.name}: wall points behind a {o.cls}"
            if o.cls == "beam":
                lo2, hi2 = lo + [0.05, 0.05, 0], hi - [0.05, 0.05, 0]
                hi2[2] = np.inf
                assert not np.all((ceiling > lo2) & (ceiling < hi2), axis=1).any()


def test_structure_colours_do_not_give_classes_away(rooms_by_type):
    """Beams look like the ceiling and columns like the walls: geometry must tell them apart."""
    for room in rooms_by_type:
        mean = {}
        for o in room.objects:
            mean.setdefault(o.cls, []).append(o.rgb.astype(float))
        mean = {c: np.concatenate(v).mean(axis=0) for c, v in mean.items()}
        assert np.abs(mean["beam"] - mean["ceiling"]).max() < 0.25 * mean["ceiling"].max()
        assert np.abs(mean["column"] - mean["wall"]).max() < 0.1 * mean["wall"].max()


# ---------------------------------------------------------------------------------------------
# ModelNet
# ---------------------------------------------------------------------------------------------


def _read_off(path: Path) -> tuple[np.ndarray, np.ndarray]:
    lines = path.read_text().splitlines()
    assert lines[0] == "OFF"
    nv, nf, ne = map(int, lines[1].split())
    assert ne == 0 and len(lines) == 2 + nv + nf
    v = np.array([list(map(float, s.split())) for s in lines[2 : 2 + nv]])
    f = np.array([list(map(int, s.split())) for s in lines[2 + nv :]])
    assert v.shape == (nv, 3) and f.shape == (nf, 4) and np.all(f[:, 0] == 3)
    return v, f[:, 1:]


def test_modelnet_layout_valid_meshes_and_determinism(tmp_path):
    classes = list(MODELNET_SYNTH_CLASSES)
    assert len(classes) >= 6
    paths = synth_modelnet(tmp_path / "a", per_class=2, test_per_class=1, seed=5, progress=False)
    assert len(paths) == 3 * len(classes)
    for c in classes:
        assert sorted(p.name for p in (tmp_path / "a" / c / "train").iterdir()) == [
            f"{c}_0001.off",
            f"{c}_0002.off",
        ]
        assert [p.name for p in (tmp_path / "a" / c / "test").iterdir()] == [f"{c}_0003.off"]
    for p in paths:
        v, f = _read_off(p)
        assert f.min() >= 0 and f.max() < len(v) and np.isfinite(v).all()
        area = 0.5 * np.linalg.norm(
            np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1
        )
        assert area.sum() > 1e-4
        assert (area > 1e-12).mean() > 0.99  # no sliver-only meshes
        assert v[:, 2].min() == pytest.approx(0.0, abs=1e-6)  # standing on z = 0
    again = synth_modelnet(tmp_path / "b", per_class=2, test_per_class=1, seed=5, progress=False)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]
    other = synth_modelnet(tmp_path / "c", classes=["chair"], per_class=2, seed=6, progress=False)
    assert (
        other[0].read_bytes()
        != (tmp_path / "a" / "chair" / "train" / "chair_0001.off").read_bytes()
    )
    # a subset of classes writes the same meshes for those classes
    sub = synth_modelnet(tmp_path / "d", classes=["table"], per_class=2, test_per_class=1, seed=5,
                         progress=False)  # fmt: skip
    assert (
        sub[0].read_bytes() == (tmp_path / "a" / "table" / "train" / "table_0001.off").read_bytes()
    )


def test_modelnet_class_names_and_shapes_differ():
    modelnet = pytest.importorskip("pointseg.data.modelnet")
    assert set(MODELNET_SYNTH_CLASSES) <= set(modelnet.MODELNET40_CLASSES)
    # Instances vary (proportions, rotation), and classes differ in their aspect ratios.
    rng = np.random.default_rng(0)
    aspect = {}
    for c in MODELNET_SYNTH_CLASSES:
        ext = []
        for _ in range(8):
            v, _ = make_mesh(c, rng)
            r = np.hypot(v[:, 0], v[:, 1]).max()
            ext.append(np.ptp(v[:, 2]) / r)
        assert np.std(ext) > 0
        aspect[c] = np.median(ext)
    assert aspect["bottle"] > 2 * aspect["bowl"] and aspect["lamp"] > aspect["table"]
    with pytest.raises(ConfigError, match="available"):
        make_mesh("piano", rng)
    with pytest.raises(ConfigError, match="piano"):
        synth_modelnet("/nonexistent", classes=["chair", "piano"], progress=False)


def test_modelnet_meshes_load_with_read_mesh(tmp_path):
    modelnet = pytest.importorskip("pointseg.data.modelnet")
    paths = synth_modelnet(tmp_path, classes=["chair", "lamp"], per_class=1, test_per_class=1,
                           progress=False)  # fmt: skip
    for p in paths:
        v, f = modelnet.read_mesh(p)
        v2, f2 = _read_off(p)
        np.testing.assert_allclose(v, v2)
        np.testing.assert_array_equal(f, f2)
        pts = modelnet.sample_surface(v, f, 256, np.random.default_rng(0))
        assert pts.shape == (256, 3) and np.linalg.norm(pts, axis=1).max() <= 1 + 1e-5


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_s3dis_and_modelnet(tmp_path, capsys):
    out = tmp_path / "rooms"
    argv = ["synth", "s3dis", "--out", str(out), "--areas", "1", "--rooms-per-area", "1"]
    assert main([*argv, "--density", "0.2", "--seed", "2", "--no-progress"]) == 0
    msg = capsys.readouterr().out
    room = out / "Area_1" / room_plan(1, 1)[0][2]
    n = sum(1 for _ in open(room / f"{room.name}.txt", "rb"))
    assert "wrote 1 rooms" in msg and f"({n:,} points)" in msg and "prepare s3dis" in msg
    api = tmp_path / "api"
    synth_s3dis(api, areas=1, rooms_per_area=1, seed=2, density=0.2, progress=False)
    assert _files(api) == _files(out)

    assert main(["synth", "modelnet", "--out", str(tmp_path / "m"), "--classes", "chair",
                 "table", "--per-class", "2", "--no-progress"]) == 0  # fmt: skip
    assert len(list((tmp_path / "m").rglob("*.off"))) == 2 * 3  # 2 train + 1 test per class
    assert main(["synth", "modelnet", "--out", "x", "--list-classes"]) == 0
    assert capsys.readouterr().out.split()[-len(MODELNET_SYNTH_CLASSES) :] == list(
        MODELNET_SYNTH_CLASSES
    )


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["synth", "s3dis", "--out", str(tmp_path), "--areas", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "areas" in err and "Traceback" not in err
    f = tmp_path / "f"
    f.write_text("")
    assert main(["synth", "s3dis", "--out", str(f), "--areas", "1", "--no-progress"]) == 1
    assert "not a directory" in capsys.readouterr().err
    assert main(["synth", "modelnet", "--out", str(tmp_path), "--classes", "piano"]) == 1
    assert "piano" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# End to end with the room cache
# ---------------------------------------------------------------------------------------------


def test_prepare_s3dis_reads_synthetic_rooms(small_set, tmp_path):
    from pointseg.data.s3dis import prepare_s3dis, read_index

    out, rooms = small_set
    prepare_s3dis(out, tmp_path / "cache", areas=[1], progress=False)
    index = read_index(tmp_path / "cache")
    entries = index["rooms"]
    assert sorted(e["room"] for e in entries) == sorted(
        r.name for r in rooms if r.parent.name == "Area_1"
    )
    for e in entries:
        lines = sum(1 for _ in open(out / "Area_1" / e["room"] / f"{e['room']}.txt", "rb"))
        assert e["points"] == lines and sum(e["histogram"]) == lines
        assert all(h > 0 for h in e["histogram"])


@pytest.mark.slow
def test_classes_are_learnable_but_not_from_colour_alone():
    """Per-point random forest: colour alone is far from enough, geometry + colour does well."""
    sklearn = pytest.importorskip("sklearn.ensemble")

    def feats(rooms):
        g, c, y = [], [], []
        for r in rooms:
            xyz, lab = _room_arrays(r)
            L, W, H = r.size
            g.append(np.stack([xyz[:, 2], H - xyz[:, 2], _wall_distance(xyz, L, W)], 1))
            c.append(np.concatenate([o.rgb for o in r.objects]).astype(float))
            y.append(lab)
        return np.concatenate(g), np.concatenate(c), np.concatenate(y)

    train = [make_room(np.random.default_rng([1, a, i]), t) for a in range(1, 5)
             for i, t, _ in room_plan(a, 2)]  # fmt: skip
    test = [make_room(np.random.default_rng([1, 5, i]), t) for i, t, _ in room_plan(5, 3)]
    g, c, y = feats(train)
    gt, ct, yt = feats(test)
    sel = np.random.default_rng(0).choice(len(y), 40_000, replace=False)
    acc = {}
    for name, x, xt in (("colour", c, ct), ("both", np.hstack([g, c]), np.hstack([gt, ct]))):
        model = sklearn.RandomForestClassifier(40, min_samples_leaf=5, random_state=0)
        acc[name] = float((model.fit(x[sel], y[sel]).predict(xt) == yt).mean())
    assert acc["colour"] < 0.7 and acc["both"] > 0.85, acc


def test_room_elements_add_only_their_classes_and_share_one_builder():
    """The room builder split into element modules: each element function adds objects of its
    own classes only (at least one), and the builder's free-space bookkeeping is shared."""
    from pointseg.data.synthetic.builder import RoomBuilder
    from pointseg.data.synthetic.clutter import add_clutter
    from pointseg.data.synthetic.furniture import add_bookcases, add_furniture, add_sofas
    from pointseg.data.synthetic.structure import (
        add_beams,
        add_boards,
        add_columns,
        add_doors,
        add_structure,
        add_windows,
    )

    b = RoomBuilder(np.random.default_rng(3), ROOM_TYPES["office"], 0.2)
    steps = [
        (add_structure, {"floor", "ceiling", "wall"}),
        (add_doors, {"door"}),
        (add_windows, {"window"}),
        (add_columns, {"column"}),
        (add_beams, {"beam"}),
        (add_boards, {"board"}),
        (add_furniture, {"table", "chair"}),
        (add_sofas, {"sofa"}),
        (add_bookcases, {"bookcase"}),
        (add_clutter, {"clutter"}),
    ]
    for fn, classes in steps:
        n = len(b.objects)
        fn(b)
        added = {o.cls for o in b.objects[n:]}
        assert added and added <= classes, (fn.__name__, added)
    assert b.wall_used != [[], [], [], []] and b.floor_used and b.carves
    # The same steps in make_room's order give make_room's room (before the origin shift).
    objects = b.finish()
    room = make_room(np.random.default_rng(3), "office", density=0.2)
    assert [o.cls for o in objects] == [o.cls for o in room.objects]
    for a, r in zip(objects, room.objects, strict=True):
        np.testing.assert_array_equal(np.round(a.xyz, 3) + 0.0, r.xyz)
        np.testing.assert_array_equal(a.rgb, r.rgb)
