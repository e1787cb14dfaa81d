"""`pointseg predict` end to end on tiny generated scans, and every bad input of issue #12."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pointseg.cli import main
from pointseg.data.ply import read_ply, write_ply
from pointseg.data.pointcloud import read_point_cloud
from pointseg.data.s3dis import CLASS_COLORS, CLASSES
from pointseg.errors import DataError

C = len(CLASSES)


def _tiny(**kw):
    from pointseg.models import ModelConfig

    base = dict(channels=8, num_blocks=3, k=4, fusion_channels=16, head_channels=(16,),
                stochastic=False)  # fmt: skip
    return ModelConfig(**{**base, **kw})


def _ckpt(path: Path, cfg=None, meta=None) -> Path:
    from pointseg.checkpoint import save_checkpoint
    from pointseg.models import DeepGCN

    cfg = cfg or _tiny()
    torch.manual_seed(0)
    model = DeepGCN(cfg)
    meta = meta or {"task": "segmentation", "dataset": "s3dis", "classes": list(CLASSES),
                    "data": {"num_point": 64}}  # fmt: skip
    return save_checkpoint(path, model_config=cfg, model_state=model.state_dict(), meta=meta)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return _ckpt(tmp_path_factory.mktemp("run") / "best.pt")


def _scan(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform([0, 0, 0], [4.0, 3.0, 2.5], (n, 3)).astype(np.float32) + [5, 5, 0]
    return xyz.astype(np.float32), rng.integers(0, 256, (n, 3)).astype(np.uint8)


def _run(*argv) -> int:
    return main(["predict", *map(str, argv), "--no-progress"])


# ------------------------------------------------------------------------------ end to end
def test_ply_in_ply_out_equals_library_prediction(ckpt, tmp_path, capsys):
    xyz, rgb = _scan()
    write_ply(tmp_path / "scan.ply", xyz, rgb=rgb)
    assert _run("--checkpoint", ckpt.parent, "--input", tmp_path / "scan.ply",
                "--out", tmp_path / "scan_seg.ply", "--tile-size", "2") == 0  # fmt: skip
    text = capsys.readouterr().out
    # every choice printed once
    for s in ("blocks: 1 m, 64 points", "stride: 1 m", "device cpu", "tiles 2 m", "wrote"):
        assert text.count(s) == 1, s
    out = read_ply(tmp_path / "scan_seg.ply")
    np.testing.assert_array_equal(out["xyz"], xyz)
    assert out["label"].dtype == np.int32 and out["confidence"].dtype == np.float32
    np.testing.assert_array_equal(out["rgb"], CLASS_COLORS[out["label"]])
    # the same as the library call with the checkpoint's recipe
    from pointseg.checkpoint import model_from_checkpoint
    from pointseg.engine.predict import predict_cloud

    model, _ = model_from_checkpoint(ckpt)
    res = predict_cloud(model, xyz, rgb, num_classes=C, num_point=64, stride=1.0, tile_size=2.0)
    np.testing.assert_array_equal(out["label"], res.pred)
    np.testing.assert_allclose(out["confidence"], res.confidence, rtol=1e-6)
    summary = json.loads((tmp_path / "scan_seg.summary.json").read_text())
    assert summary["points"] == len(xyz)
    assert sum(c["points"] for c in summary["classes"].values()) == len(xyz)
    assert summary["classes"][CLASSES[int(res.pred[0])]]["points"] == int(
        (res.pred == res.pred[0]).sum()
    )
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporary files


def test_text_without_colour_y_up_scale_and_formats(ckpt, tmp_path, capsys):
    xyz, _ = _scan(2000, seed=1)
    xyz_mm_yup = np.stack([xyz[:, 0], xyz[:, 2], -xyz[:, 1]], axis=1) * 1000.0  # mm, y up
    np.savetxt(tmp_path / "scan.xyz", xyz_mm_yup, fmt="%.1f")
    argv = ["--checkpoint", ckpt, "--input", tmp_path / "scan.xyz", "--reader", "plain"]
    assert _run(*argv) == 1
    assert "--rgb zeros" in capsys.readouterr().err  # no colour: the error names the option
    for fmt in ("npz", "csv", "txt"):
        assert _run(*argv, "--rgb", "zeros", "--up", "y", "--scale", "0.001",
                    "--out", tmp_path / f"o.{fmt}") == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "rgb: files without colour get zeros" in text and "y-up rotated to z-up" in text
    with np.load(tmp_path / "o.npz") as z:
        pred, conf = z["pred"], z["confidence"]
        written = np.loadtxt(tmp_path / "scan.xyz")
        np.testing.assert_array_equal(z["xyz"], written)  # outputs keep the input coordinates
    # y-up millimetres give the same prediction as the z-up metre cloud
    metres = np.stack([written[:, 0], -written[:, 2], written[:, 1]], axis=1) * 0.001
    np.savez(tmp_path / "m.npz", xyz=metres, rgb=np.zeros_like(xyz, np.uint8))
    assert (
        _run("--checkpoint", ckpt, "--input", tmp_path / "m.npz", "--out", tmp_path / "m_seg.npz")
        == 0
    )
    with np.load(tmp_path / "m_seg.npz") as z:
        assert np.mean(z["pred"] == pred) > 0.99
    import pandas as pd

    csv = pd.read_csv(tmp_path / "o.csv")
    assert list(csv.columns) == ["x", "y", "z", "label", "class", "confidence"]
    np.testing.assert_array_equal(csv["label"], pred)
    assert list(csv["class"][:5]) == [CLASSES[i] for i in pred[:5]]
    txt = np.loadtxt(tmp_path / "o.txt", usecols=(0, 1, 2, 3, 5))
    np.testing.assert_array_equal(txt[:, 3], pred)
    np.testing.assert_allclose(txt[:, 4], conf, atol=1e-4)


def test_folder_and_glob_inputs(ckpt, tmp_path, capsys):
    src = tmp_path / "scans"
    src.mkdir()
    for i in range(2):
        xyz, rgb = _scan(800, seed=i)
        write_ply(src / f"s{i}.ply", xyz, rgb=rgb)
    (src / "notes.md").write_text("not a cloud")
    assert _run("--checkpoint", ckpt, "--input", src, "--out", tmp_path / "o1") == 0
    assert sorted(p.name for p in (tmp_path / "o1").glob("*.ply")) == ["s0_seg.ply", "s1_seg.ply"]
    total = json.loads((tmp_path / "o1" / "summary.json").read_text())
    assert total["points"] == 1600 and len(total["files"]) == 2
    assert _run("--checkpoint", ckpt, "--input", str(src / "s*.ply"), "--format", "npz",
                "--out", tmp_path / "o2") == 0  # fmt: skip
    assert len(list((tmp_path / "o2").glob("*_seg.npz"))) == 2


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "name,content,match",
    [
        ("empty.ply", b"", "empty"),
        ("empty.txt", b"", "empty"),
        ("blank.txt", b"\n\n  \n", "empty"),
        ("faces.ply", b"ply\nformat ascii 1.0\nelement face 0\nproperty list uchar int vertex_indices\nend_header\n",
         "no 'vertex' element"),
        ("novert.ply", b"ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\nproperty float z\nend_header\n",
         "no points"),
        ("scan.las", b"LASF....", "unknown point-cloud extension '.las'"),
        ("nan.txt", b"nan nan nan\nnan nan nan\n", "NaN"),
    ],
)  # fmt: skip
def test_bad_files_name_the_file(tmp_path, name, content, match):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(DataError, match=match) as exc:
        read_point_cloud(p)
    assert str(p) in str(exc.value)


def test_bad_text_line_reported_with_line_number_skip_or_stop(tmp_path):
    p = tmp_path / "scan.txt"
    p.write_text("1 2 3 10 20 30\n4 5 6 40 50 60\n7 8 x9 1 2 3\n1 1 1 1 1 1\n2 2 2\n3 3 3 9 9 9\n")
    with pytest.raises(DataError, match=r"scan\.txt:3: bad line \(not a number\)"):
        read_point_cloud(p)
    c = read_point_cloud(p, on_bad_line="skip")
    assert len(c) == 4 and c.rgb.dtype == np.uint8
    np.testing.assert_array_equal(c.xyz[:, 0], [1, 4, 1, 3])
    assert (
        "line 3: not a number" in c.notes[0]
        and "line 5: 3 fields where the file has 6" in c.notes[0]
    )


def test_nan_coordinates_in_ply_stop_or_skip(tmp_path):
    xyz, rgb = _scan(100)
    xyz[7] = np.nan
    write_ply(tmp_path / "n.ply", xyz, rgb=rgb)
    with pytest.raises(DataError, match=r"n\.ply: 1 of 100 points have NaN.*point 7"):
        read_point_cloud(tmp_path / "n.ply")
    c = read_point_cloud(tmp_path / "n.ply", on_bad_line="skip")
    assert len(c) == 99 and np.isfinite(c.xyz).all() and len(c.rgb) == 99


def test_pts_count_line_intensity_and_open3d_pcd(tmp_path):
    p = tmp_path / "a.pts"
    p.write_text("2\n0 0 0 0.5 255 0 0\n1 1 1 0.7 0 255 0\n")
    c = read_point_cloud(p, reader="plain")
    np.testing.assert_array_equal(c.rgb, [[255, 0, 0], [0, 255, 0]])
    pytest.importorskip("open3d")
    import open3d as o3d

    xyz, rgb = _scan(50)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.astype(np.float64)))
    pcd.colors = o3d.utility.Vector3dVector(rgb / 255.0)
    o3d.io.write_point_cloud(str(tmp_path / "a.pcd"), pcd)
    c = read_point_cloud(tmp_path / "a.pcd")
    assert c.reader == "open3d"
    np.testing.assert_allclose(c.xyz, xyz, atol=1e-5)
    np.testing.assert_array_equal(c.rgb, rgb)


def test_classification_checkpoint_is_refused(tmp_path, capsys):
    cfg = _tiny(task="classification", num_classes=5, pooling="max")
    ck = _ckpt(
        tmp_path / "mn" / "best.pt", cfg, meta={"task": "classification", "dataset": "modelnet40"}
    )
    xyz, rgb = _scan(300)
    write_ply(tmp_path / "s.ply", xyz, rgb=rgb)
    assert _run("--checkpoint", ck, "--input", tmp_path / "s.ply") == 1
    err = capsys.readouterr().err
    assert str(ck) in err and "classification checkpoint" in err and "segmentation" in err
    assert not (tmp_path / "s_seg.ply").exists()


def test_channels_the_file_cannot_provide(tmp_path, capsys):
    ck = _ckpt(tmp_path / "c6" / "best.pt", _tiny(in_channels=6))
    xyz, rgb = _scan(300)
    write_ply(tmp_path / "s.ply", xyz, rgb=rgb)
    assert _run("--checkpoint", ck, "--input", tmp_path / "s.ply") == 1
    err = capsys.readouterr().err
    assert "6 input channels" in err and str(ck) in err


def test_not_a_checkpoint_and_missing_input(ckpt, tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    assert _run("--checkpoint", tmp_path / "x.pt", "--input", tmp_path / "none.ply") == 1
    assert "x.pt" in capsys.readouterr().err
    assert _run("--checkpoint", ckpt, "--input", tmp_path / "none.ply") == 1
    assert "none.ply: file not found" in capsys.readouterr().err
    assert _run("--checkpoint", ckpt, "--input", str(tmp_path / "*.ply")) == 1
    assert "matches no file" in capsys.readouterr().err


def test_max_memory_too_small_is_explained(ckpt, tmp_path, capsys):
    xyz, rgb = _scan(300)
    write_ply(tmp_path / "s.ply", xyz, rgb=rgb)
    assert _run("--checkpoint", ckpt, "--input", tmp_path / "s.ply", "--max-memory", "10MB") == 1
    assert "--max-memory 0.01 GiB is too small" in capsys.readouterr().err
    assert _run("--checkpoint", ckpt, "--input", tmp_path / "s.ply", "--max-memory", "lots") == 1
    assert "expected a size" in capsys.readouterr().err


def test_s3dis_room_folder_scored_against_its_labels(ckpt, tmp_path, capsys):
    from pointseg.data.s3dis import parse_room
    from pointseg.data.synthetic import synth_s3dis

    synth_s3dis(tmp_path / "raw", areas=[1], rooms_per_area=1, seed=0, density=0.05, progress=False)
    room_dir = next((tmp_path / "raw" / "Area_1").iterdir())
    assert _run("--checkpoint", ckpt, "--input", room_dir, "--out", tmp_path / "r.ply") == 0
    assert "ground truth in" in capsys.readouterr().out
    room, _ = parse_room(room_dir)
    out = read_ply(tmp_path / "r.ply")
    np.testing.assert_array_equal(out["gt"], room.label)
    s = json.loads((tmp_path / "r.summary.json").read_text())
    assert s["reader"] == "s3dis room"
    assert s["ground_truth"]["oa"] == pytest.approx(np.mean(out["label"] == room.label))
