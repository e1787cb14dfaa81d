"""The viewer's data side without OpenGL: colourings, subsets, inputs, bad-input messages, the
matplotlib renderer, PLY export."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pointseg.cli import main
from pointseg.data.ply import read_ply
from pointseg.data.s3dis import CLASS_COLORS, CLASSES
from pointseg.errors import ConfigError, DataError
from visualize import scene as S
from visualize.export import export_ply
from visualize.sources import load_scene
from visualize.static import render_static

from .conftest import CEILING, FLOOR, TABLE, WALL, write_eval


@pytest.fixture(scope="module")
def scene(room):
    return S.Scene(
        room["xyz"],
        room["rgb"],
        room["label"],
        {"good": room["good"], "bad": room["bad"]},
        title="Area_1/room_1",
    )


def test_panels_and_colourings(scene, room):
    assert scene.panels == [S.TRUTH, "good", "bad"]
    gt = S.panel_colors(scene, S.TRUTH, "pred")
    np.testing.assert_array_equal(gt, CLASS_COLORS[room["label"]])
    np.testing.assert_array_equal(S.panel_colors(scene, "bad", "pred"), CLASS_COLORS[room["bad"]])
    np.testing.assert_array_equal(S.panel_colors(scene, "bad", "gt"), gt)
    np.testing.assert_array_equal(S.panel_colors(scene, "good", "rgb"), room["rgb"])
    err = S.panel_colors(scene, "bad", "errors")
    wrong = room["bad"] != room["label"]
    assert wrong.sum() > 0
    assert (err[wrong] == S.WRONG_COLOR).all() and (err[~wrong] == S.CORRECT_COLOR).all()
    # the truth panel keeps the ground truth in the errors / diff colourings
    np.testing.assert_array_equal(S.panel_colors(scene, S.TRUTH, "errors"), gt)
    # diff: good right & bad wrong = the floor made wrong; bad right & good wrong = the table half
    cat = S.diff_category(scene, "good", "bad")
    np.testing.assert_array_equal(cat == 0, (room["good"] == room["label"]) & wrong)
    np.testing.assert_array_equal(cat == 1, (room["good"] != room["label"]) & ~wrong)
    diff = S.panel_colors(scene, "good", "diff")
    np.testing.assert_array_equal(diff, S.DIFF_COLORS[cat])
    texts = [t for _, t in S.legend(scene, "diff")]
    assert f"good right, bad wrong ({int((cat == 0).sum()):,})" in texts
    assert [t for _, t in S.legend(scene, "pred")] == [
        CLASSES[c] for c in (CEILING, FLOOR, WALL, TABLE, 8)
    ]


def test_panel_title_is_the_models_miou(scene):
    from pointseg.metrics import ConfusionMatrix

    cm = ConfusionMatrix(13).update(scene.preds["bad"], scene.label)
    assert S.panel_title(scene, "bad") == f"bad (mIoU {100 * cm.miou():.1f})"
    assert S.panel_title(scene, S.TRUTH) == S.TRUTH


def test_visibility_hides_the_ceiling_and_isolates_a_class(scene, room):
    idx = np.arange(scene.num_points)
    keep = S.visible_mask(scene, S.TRUTH, idx, hide_ceiling=True)
    np.testing.assert_array_equal(keep, room["label"] != CEILING)
    only = S.visible_mask(scene, "bad", idx, hide_ceiling=False, isolate=WALL)
    np.testing.assert_array_equal(only, (room["label"] == WALL) | (room["bad"] == WALL))
    # no labels: the top of the room's height is cut instead
    bare = S.Scene(room["xyz"])
    cut = S.visible_mask(bare, "RGB", idx, hide_ceiling=True)
    np.testing.assert_array_equal(cut, room["xyz"][:, 2] < 0.85 * 2.5)


def test_voxel_index_keeps_one_point_per_voxel():
    rng = np.random.default_rng(1)
    xyz = rng.random((5000, 3)).astype(np.float32) * [3, 2, 1]
    idx = S.voxel_index(xyz, 0.1)
    cells = np.floor((xyz - xyz.min(axis=0)) / 0.1).astype(int)
    occupied = {tuple(c) for c in cells}
    assert len(idx) == len(occupied) == len({tuple(c) for c in cells[idx]})
    # the representative is the first point of its voxel in file order
    first = {}
    for i, c in enumerate(map(tuple, cells)):
        first.setdefault(c, i)
    assert sorted(first.values()) == idx.tolist()
    v, index = S.auto_voxel(xyz, 800)
    assert v > 0 and 200 <= len(index) <= 800
    np.testing.assert_array_equal(index, S.voxel_index(xyz, v))
    v, index = S.auto_voxel(xyz, 10_000)
    assert v == 0.0 and len(index) == len(xyz)


def test_display_downsample_is_said_and_metrics_use_every_point(scene):
    from visualize.viewer import Viewer

    said = []
    v = Viewer(scene, print_fn=said.append, voxel=None)
    assert v.voxel == 0 and not said  # small room: every point shown
    v = Viewer(scene, print_fn=said.append, budget=6000)
    assert v.voxel > 0 and len(v.index) * 3 <= 6000
    assert "voxel" in said[0] and "metrics and exports use every point" in said[0]
    # exports never see the downsample: the viewer keeps the whole scene
    assert v.scene.num_points == scene.num_points


def test_sources_eval_outputs_and_names(tmp_path, room):
    a = write_eval(tmp_path, "plain", room, room["bad"])
    b = write_eval(tmp_path, "res", room, room["good"])
    sc = load_scene([a, b], print_fn=None)
    assert sc.panels == [S.TRUTH, "plain", "res"] and sc.title == "Area_1/room_1"
    np.testing.assert_array_equal(sc.preds["plain"], room["bad"])
    sc = load_scene([a, b], names=["PlainGCN", "ResGCN"], room="room_1", print_fn=None)
    assert sc.models == ["PlainGCN", "ResGCN"]
    # a room cache file + an eval output of the same room
    cache = tmp_path / "cache" / "Area_1"
    cache.mkdir(parents=True)
    np.savez(
        cache / "room_1.npz",
        xyz=room["xyz"],
        rgb=room["rgb"],
        label=room["label"],
        instance=np.zeros(len(room["xyz"]), np.int32),
    )
    sc = load_scene([cache / "room_1.npz", b], print_fn=None)
    assert sc.models == ["res"] and sc.num_points == len(room["xyz"])


def test_demo_folder_layout(tmp_path, room):
    for model, pred in (("PlainGCN-5", room["bad"]), ("ResGCN-5", room["good"])):
        d = tmp_path / "demo" / "predictions" / model
        d.mkdir(parents=True)
        np.savez(
            d / "Area_2_hall_1.npz",
            xyz=room["xyz"],
            rgb=room["rgb"],
            label=room["label"],
            pred=pred,
        )
    (tmp_path / "demo" / "demo.json").write_text('{"models": {"ResGCN-5": {}, "PlainGCN-5": {}}}')
    sc = load_scene([tmp_path / "demo"], print_fn=None)
    assert sc.panels == [S.TRUTH, "ResGCN-5", "PlainGCN-5"]  # the demo's order


def _cli_error(argv, capsys) -> str:
    assert main(argv) == 1
    return capsys.readouterr().err


def test_bad_inputs_get_clear_messages(tmp_path, room, capsys):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    err = _cli_error(["view", str(empty), "--no-window"], capsys)
    assert "no predictions found" in err and "eval_area" in err and "Traceback" not in err
    a = write_eval(tmp_path, "a", room, room["bad"])
    short = {k: v[:-10] for k, v in room.items()}
    b = write_eval(tmp_path, "b", short, short["good"])
    err = _cli_error(["view", str(a), str(b), "--no-window"], capsys)
    assert (
        f"{len(room['xyz']) - 10:,} predicted points but the room" in err
        and "Area_1_room_1.npz" in err
    )
    err = _cli_error(["view", str(a), "--room", "office_9", "--no-window"], capsys)
    assert "unknown room 'office_9'" in err and "available: Area_1_room_1" in err
    ply = tmp_path / "nocoords.ply"
    ply.write_text(
        "ply\nformat ascii 1.0\nelement vertex 2\nproperty float a\nproperty float b\nend_header\n1 2\n3 4\n"
    )
    err = _cli_error(["view", str(ply), "--no-window"], capsys)
    assert str(ply) in err and "x, y, z" in err
    err = _cli_error(["view", str(a), "--color", "diff", "--no-window"], capsys)
    assert "compares two models" in err
    err = _cli_error(["view", str(a), "--isolate", "sofaa", "--no-window"], capsys)
    assert "unknown class 'sofaa'" in err and "sofa" in err


def test_missing_open3d_and_display_are_one_message(monkeypatch, scene, capsys, tmp_path, room):
    import sys

    from visualize.display import ViewerUnavailable, import_open3d
    from visualize.viewer import show

    monkeypatch.setitem(sys.modules, "open3d", None)  # `import open3d` -> ImportError
    with pytest.raises(
        ViewerUnavailable, match=r"pip install 'open3d-cpu==0\.20\.\*'.*--no-window"
    ):
        import_open3d()
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(ViewerUnavailable, match="no display.*--no-window"):
        show(scene)
    a = write_eval(tmp_path, "a", room, room["bad"])
    err = _cli_error(["view", str(a)], capsys)
    assert err.startswith("error: no display") and "Traceback" not in err


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_static_renderer_draws_the_comparison_with_the_viewer_colours(tmp_path, scene):
    out = render_static(
        scene, tmp_path / "errors.png", coloring="errors", view="top", point_size=20
    )
    img = _pixels(out)
    h, w, _ = img.shape
    thirds = [img[:, i * w // 3 : (i + 1) * w // 3].reshape(-1, 3) for i in range(3)]

    def count(pix, rgb):
        return int((pix == np.asarray(rgb, np.uint8)).all(axis=1).sum())

    floor, red, grey = CLASS_COLORS[FLOOR], S.WRONG_COLOR, S.CORRECT_COLOR
    assert count(thirds[0], floor) > 2000  # ground-truth panel: floor blue
    assert count(thirds[0], red) == 0
    assert count(thirds[1], grey) > 2000 and count(thirds[1], red) > 0  # good: a table half wrong
    assert count(thirds[2], red) > 2000 and count(thirds[2], grey) > 2000
    # the red of the bad panel is where the floor was made wrong: the left part of its room
    third = thirds[2].reshape(h, -1, 3)
    cols = np.flatnonzero((third == red).all(axis=2).any(axis=0))
    grey_cols = np.flatnonzero((third == grey).all(axis=2).any(axis=0))
    room_w = grey_cols.max() - min(cols.min(), grey_cols.min())
    assert cols.max() - cols.min() < 0.5 * room_w  # x < 1.5 of a 4 m room
    out = render_static(scene, tmp_path / "iso.png", coloring="pred", view="iso")
    assert count(_pixels(out).reshape(-1, 3), CLASS_COLORS[WALL]) > 500


def test_ply_export_round_trip(tmp_path, scene, room):
    paths = export_ply(scene, tmp_path / "ply", coloring="errors")
    assert [p.name for p in paths] == [
        "Area_1_room_1_ground_truth.ply",
        "Area_1_room_1_good.ply",
        "Area_1_room_1_bad.ply",
    ]
    for path, panel in zip(paths, scene.panels, strict=True):
        got = read_ply(path)
        np.testing.assert_array_equal(got["xyz"], room["xyz"])
        np.testing.assert_array_equal(got["rgb"], S.panel_colors(scene, panel, "errors"))
        assert got["label"].dtype == np.int32
        np.testing.assert_array_equal(got["label"], room["label"])
        if panel == S.TRUTH:
            assert "pred" not in got
        else:
            np.testing.assert_array_equal(got["pred"], scene.preds[panel])
    o3d = pytest.importorskip(
        "open3d", reason="Open3D not installed (pip install 'open3d-cpu==0.20.*')"
    )
    for path, panel in zip(paths, scene.panels, strict=True):
        pcd = o3d.t.io.read_point_cloud(str(path))
        np.testing.assert_array_equal(pcd.point.positions.numpy(), room["xyz"])
        colors = pcd.point.colors.numpy()
        if colors.dtype != np.uint8:
            colors = np.rint(colors * 255).astype(np.uint8)
        np.testing.assert_array_equal(colors, S.panel_colors(scene, panel, "errors"))
        np.testing.assert_array_equal(pcd.point.label.numpy().ravel(), room["label"])
        if panel != S.TRUTH:
            np.testing.assert_array_equal(pcd.point.pred.numpy().ravel(), scene.preds[panel])
    # and back into the viewer: the exported prediction is a model panel again
    sc = load_scene([paths[2]], print_fn=None)
    assert sc.models == ["Area_1_room_1_bad"]
    np.testing.assert_array_equal(sc.preds["Area_1_room_1_bad"], room["bad"])


def test_colouring_errors(scene, room):
    with pytest.raises(ConfigError, match="needs ground-truth"):
        S.check_coloring(S.Scene(room["xyz"], preds={"m": room["bad"]}), "errors")
    with pytest.raises(ConfigError, match="unknown model 'x'"):
        S.check_coloring(scene, "diff", ("good", "x"))
    with pytest.raises(DataError, match="class ids"):
        S.Scene(room["xyz"], label=np.full(len(room["xyz"]), 13))


def test_pointseg_predict_ply_opens_as_a_prediction(tmp_path, room):
    """`pointseg predict` writes the model's class as `label` (+ `confidence`, + `gt` when the
    input had labels): the viewer must draw it as a model panel, never as ground truth."""
    from pointseg.commands.predict import write_segmentation

    n = len(room["xyz"])
    conf = np.full(n, 0.5, dtype=np.float32)
    plain = tmp_path / "scan_seg.ply"
    write_segmentation(plain, "ply", room["xyz"], room["bad"], conf, list(CLASSES))
    sc = load_scene([plain], print_fn=None)
    assert sc.models == ["scan_seg"] and sc.label is None
    np.testing.assert_array_equal(sc.preds["scan_seg"], room["bad"])

    with_gt = tmp_path / "room_seg.ply"
    write_segmentation(with_gt, "ply", room["xyz"], room["bad"], conf, list(CLASSES),
                       gt=room["label"])  # fmt: skip
    sc = load_scene([with_gt], print_fn=None)
    np.testing.assert_array_equal(sc.label, room["label"])
    np.testing.assert_array_equal(sc.preds["room_seg"], room["bad"])
