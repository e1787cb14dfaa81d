"""pointseg.engine.evaluate / `pointseg eval` / `pointseg eval-6fold` on tiny synthetic rooms."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pointseg.cli import main
from pointseg.data.blocks import make_s3dis_blocks, room_to_blocks
from pointseg.data.s3dis import CLASSES
from pointseg.engine import evaluate as E
from pointseg.engine.report import read_confusion_csv, read_per_class_csv
from pointseg.metrics import ConfusionMatrix

C = len(CLASSES)


# ------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Tiny models are all per-op overhead; on a shared 2-core machine one intra-op thread is
    # several times faster than two contending ones. Restored afterwards.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _room(seed: int, n: int = 1500, island: int = 20) -> dict[str, np.ndarray]:
    """A 3 m × 2 m × 2.5 m room of random points + a small island far away (a dropped block)."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform([0, 0, 0], [3.0, 2.0, 2.5], size=(n, 3))
    isl = rng.uniform([4.6, 0.2, 1.0], [4.8, 0.4, 1.2], size=(island, 3))  # < min_points
    xyz = np.concatenate([xyz, isl]).astype(np.float32) + np.float32(10.0)  # not at the origin
    rgb = rng.integers(0, 256, size=(len(xyz), 3), dtype=np.uint8)
    # Labels from height (floor / wall / ceiling-ish bands) so a model *could* learn them.
    z = xyz[:, 2] - xyz[:, 2].min()
    label = np.clip((z / 2.5 * 4).astype(np.int64), 0, 3).astype(np.uint8)
    label[n:] = 12  # the island is clutter
    return {"xyz": xyz, "rgb": rgb, "label": label, "instance": np.zeros(len(xyz), np.int32)}


def _write_cache(root: Path, rooms: dict[tuple[int, str], dict[str, np.ndarray]]) -> Path:
    entries = []
    for (area, name), room in rooms.items():
        rel = f"Area_{area}/{name}.npz"
        (root / f"Area_{area}").mkdir(parents=True, exist_ok=True)
        np.savez(root / rel, **room)
        hist = np.bincount(room["label"], minlength=C).tolist()
        entries.append(
            {
                "area": f"Area_{area}",
                "room": name,
                "file": rel,
                "points": len(room["xyz"]),
                "histogram": hist,
            }
        )
    (root / "index.json").write_text(
        json.dumps({"version": 1, "classes": list(CLASSES), "rooms": entries})
    )
    return root


def _tiny_config(**kw):
    from pointseg.models import ModelConfig

    base = dict(
        channels=8, num_blocks=2, k=4, fusion_channels=16, head_channels=(16,), stochastic=False
    )
    return ModelConfig(**{**base, **kw})


def _save_ckpt(path: Path, cfg, *, meta: dict) -> Path:
    from pointseg.checkpoint import save_checkpoint
    from pointseg.models import DeepGCN

    torch.manual_seed(0)
    model = DeepGCN(cfg)
    return save_checkpoint(path, model_config=cfg, model_state=model.state_dict(), meta=meta)


@pytest.fixture(scope="module")
def s3dis_setup(tmp_path_factory):
    """Room cache (Area_1, Area_2, Area_5 rooms), test blocks, and one checkpoint per area."""
    root = tmp_path_factory.mktemp("s3dis")
    cache = _write_cache(
        root / "cache",
        {
            (1, "office_1"): _room(1, 900),
            (2, "hallway_1"): _room(2, 700),
            (5, "office_1"): _room(5, 1200),
            (5, "conferenceRoom_1"): _room(6, 800),
        },
    )
    blocks = root / "blocks"
    make_s3dis_blocks(cache, blocks, split="test", num_point=64, min_points=30, progress=False)
    ckpts = {}
    for area in (1, 2, 5):
        run = root / "runs" / f"area{area}"
        meta = {
            "task": "segmentation",
            "dataset": "s3dis",
            "classes": list(CLASSES),
            "data": {"cache": str(cache), "blocks": str(blocks), "test_area": area},
        }
        ckpts[area] = _save_ckpt(run / "best.pt", _tiny_config(), meta=meta)
    return {"root": root, "cache": cache, "blocks": blocks, "ckpts": ckpts}


# ------------------------------------------------------------------------- fake models (exact)
class AbsoluteModel(nn.Module):
    """Logits depend only on the normalised absolute coordinates (channels 6:9): every block that
    contains a point gives it the same probabilities, so the room-level result is predictable."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, 9) -> (B, N, C)
        centres = torch.linspace(0, 1, C)
        return -((x[..., 8:9] - centres) ** 2) * 40.0 + x[..., 6:7] * torch.arange(C) * 0.5


class RelativeModel(nn.Module):
    """Logits depend on block-centred x (channel 0): each block gives a point different
    probabilities, so voting (the average) is visible."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.linspace(-3, 3, C)
        return x[..., 0:1] * w + x[..., 1:2] * w.flip(0) + x[..., 2:3] * 0.1


def _softmax_np(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def test_whole_room_every_point_scored_and_kdtree_backprojection_exact():
    room = _room(0)
    n = len(room["xyz"])
    res = E.predict_room(
        AbsoluteModel(),
        room["xyz"],
        room["rgb"],
        room["label"],
        num_classes=C,
        num_point=64,
        min_points=30,
        batch_size=5,
    )
    assert res.prob.shape == (n, C) and res.prob.dtype == np.float32 and res.pred.shape == (n,)
    # Expected probabilities from the point's own normalised coordinates (room shifted to 0).
    pos = room["xyz"].astype(np.float64) - room["xyz"].min(0)
    norm = pos / pos.max(0)
    centres = np.linspace(0, 1, C)
    logits = -((norm[:, 2:3] - centres) ** 2) * 40.0 + norm[:, 0:1] * np.arange(C) * 0.5
    expected = _softmax_np(logits)
    scored = res.votes > 0
    # The island (20 points in a < min_points block) is unscored; everything else is scored.
    assert res.num_unscored == 20 and not scored[-20:].any() and scored[:-20].all()
    np.testing.assert_allclose(res.prob[scored], expected[scored], atol=1e-5)
    # Back-projection: an unscored point takes the probabilities of its nearest scored point.
    d = np.linalg.norm(room["xyz"][~scored][:, None, :] - room["xyz"][scored][None], axis=-1)
    nearest = np.flatnonzero(scored)[d.argmin(axis=1)]
    np.testing.assert_array_equal(res.prob[~scored], res.prob[nearest])
    np.testing.assert_array_equal(res.pred, res.prob.argmax(1))
    np.testing.assert_allclose(res.prob.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("batch_size", [1, 7])
def test_whole_room_voting_equals_bruteforce_average(batch_size):
    room = _room(3)
    kw = dict(num_point=64, min_points=30, stride=0.5, block_size=1.0)
    res = E.predict_room(
        RelativeModel(),
        room["xyz"],
        room["rgb"],
        room["label"],
        num_classes=C,
        batch_size=batch_size,
        seed=11,
        **kw,
    )
    # Reference: the same blocks (same seed), one block at a time, per-point Python accumulation.
    blocks = room_to_blocks(
        room["xyz"], room["rgb"], room["label"], rng=np.random.default_rng(11), cover_all=True, **kw
    )
    n = len(room["xyz"])
    acc = np.zeros((n, C))
    cnt = np.zeros(n)
    first = np.full((n, C), np.nan)
    model = RelativeModel()
    for b in range(len(blocks)):
        p = _softmax_np(
            model(torch.from_numpy(blocks.data[b : b + 1])).numpy()[0].astype(np.float64)
        )
        for j, i in enumerate(blocks.index[b]):
            acc[i] += p[j]
            cnt[i] += 1
            if np.isnan(first[i, 0]):
                first[i] = p[j]
    assert res.num_blocks == len(blocks)
    np.testing.assert_array_equal(res.votes, cnt.astype(np.int32))
    seen = cnt > 0
    np.testing.assert_allclose(res.prob[seen], acc[seen] / cnt[seen, None], atol=1e-5)
    # Voting is not trivial here: points lie in up to 4 overlapping blocks (stride 0.5) and the
    # average differs from the first block's probabilities.
    assert cnt.max() >= 4
    assert np.abs(res.prob[seen] - first[seen]).max() > 0.05


def test_whole_room_tiny_room_below_min_points_is_still_scored():
    room = _room(4, n=50, island=0)
    res = E.predict_room(
        AbsoluteModel(), room["xyz"], room["rgb"], num_classes=C, num_point=32, min_points=100
    )
    assert res.num_unscored == 0 and (res.votes > 0).all()


# --------------------------------------------------------------------- end-to-end `pointseg eval`
def test_eval_cli_both_protocols_files_consistent(s3dis_setup, capsys):
    ckpt = s3dis_setup["ckpts"][5]
    out = s3dis_setup["root"] / "eval5"
    rc = main(
        [
            "eval",
            "--checkpoint",
            str(ckpt.parent),
            "--out",
            str(out),
            "--batch-size",
            "16",
            "--no-progress",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "block-sampled" in text and "whole-room" in text and "mIoU" in text and "ceiling" in text
    assert "peak memory" in text
    for name in (
        "metrics.json",
        "per_class.csv",
        "confusion_block.csv",
        "confusion_room.csv",
        "confusion_block.png",
        "confusion_room.png",
    ):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert m["test_area"] == 5 and m["classes"] == list(CLASSES) and m["peak_rss_mb"] > 0
    assert set(m["protocols"]) == {"block-sampled", "whole-room"}
    room = m["protocols"]["whole-room"]
    # Every original point of both Area_5 rooms is scored once in the whole-room protocol.
    assert room["points"] == 1220 + 820
    assert {r["room"] for r in room["rooms"]} == {"office_1", "conferenceRoom_1"}
    assert room["settings"]["num_point"] == 64  # taken from the blocks manifest
    csv_rows = read_per_class_csv(out / "per_class.csv")
    for proto, entry in m["protocols"].items():
        cm = ConfusionMatrix.from_matrix(entry["confusion"])
        tag = {"block-sampled": "block", "whole-room": "room"}[proto]
        assert read_confusion_csv(out / f"confusion_{tag}.csv", CLASSES) == cm
        assert entry["miou"] == pytest.approx(cm.miou()) and entry["oa"] == pytest.approx(cm.oa())
        assert entry["macc"] == pytest.approx(cm.macc())
        rows = {r["class"]: r for r in csv_rows if r["protocol"] == proto}
        assert list(rows) == list(CLASSES)
        for name, pc in entry["per_class"].items():
            assert rows[name]["iou"] == (None if pc["iou"] is None else pytest.approx(pc["iou"]))
            assert rows[name]["union"] == pc["union"] and rows[name]["support"] == pc["support"]
    # Block-sampled scores exactly the sampled points of the Area_5 test blocks.
    from pointseg.data.blocks import S3DISBlocks

    ds = S3DISBlocks(s3dis_setup["blocks"], areas=[5], split="test")
    assert m["protocols"]["block-sampled"]["points"] == ds.labels.size
    # Per-room predictions for the viewer.
    for rname, npts in (("office_1", 1220), ("conferenceRoom_1", 820)):
        with np.load(out / "predictions" / f"Area_5_{rname}.npz") as z:
            assert set(z.files) == {"xyz", "rgb", "label", "pred", "prob_max"}
            assert z["xyz"].shape == (npts, 3) and z["pred"].shape == (npts,)
            assert z["pred"].max() < C and ((z["prob_max"] > 0) & (z["prob_max"] <= 1)).all()
    # Whole-room matrix recomputed from the saved predictions equals the reported one.
    cm = ConfusionMatrix(C)
    for f in (out / "predictions").glob("*.npz"):
        with np.load(f) as z:
            cm.update(z["pred"], z["label"])
    assert cm == ConfusionMatrix.from_matrix(room["confusion"])


def test_eval_default_out_dir_and_room_only(s3dis_setup):
    ckpt = s3dis_setup["ckpts"][1]
    m = E.evaluate_s3dis(
        ckpt, protocol="room", num_point=32, save_predictions=False, progress=False, print_fn=None
    )
    out = ckpt.parent / "eval_area1"
    assert (out / "metrics.json").is_file() and not (out / "predictions").exists()
    assert list(m["protocols"]) == ["whole-room"] and not (out / "confusion_block.csv").exists()
    assert m["protocols"]["whole-room"]["points"] == 920
    # A later block-only eval into the same folder keeps the whole-room result of this checkpoint.
    m2 = E.evaluate_s3dis(ckpt, protocol="block", progress=False, print_fn=None)
    assert list(m2["protocols"]) == ["block-sampled", "whole-room"]
    assert m2["protocols"]["whole-room"]["confusion"] == m["protocols"]["whole-room"]["confusion"]
    assert m2["protocols"]["whole-room"]["reused"] is True
    assert {r["protocol"] for r in read_per_class_csv(out / "per_class.csv")} == {
        "block-sampled",
        "whole-room",
    }


# ------------------------------------------------------------------------------------- 6-fold
def test_six_fold_pools_confusions_and_reuses_previous_eval(s3dis_setup, capsys):
    ckpts = s3dis_setup["ckpts"]
    # A previous eval of the area-2 run (same checkpoint, default settings) is reused.
    E.evaluate_s3dis(ckpts[2], protocol="room", progress=False, print_fn=None)
    out = s3dis_setup["root"] / "sixfold"
    with pytest.warns(UserWarning, match="pooling 2 of 6 folds"):
        m = E.six_fold([ckpts[1].parent, ckpts[2]], out=out, protocol="room", progress=False)
    text = capsys.readouterr().out
    assert "mean of per-fold mIoUs" in text and "pooled" in text
    folds = {f["test_area"]: f for f in m["folds"]}
    assert folds[2]["protocols"]["whole-room"]["reused"] is True
    assert not folds[1]["protocols"]["whole-room"].get("reused")
    per_run = [
        ConfusionMatrix.from_matrix(
            json.loads((ckpts[a].parent / f"eval_area{a}" / "metrics.json").read_text())[
                "protocols"
            ]["whole-room"]["confusion"]
        )
        for a in (1, 2)
    ]
    pooled = ConfusionMatrix.from_matrix(m["protocols"]["whole-room"]["confusion"])
    assert pooled == per_run[0] + per_run[1]
    assert m["protocols"]["whole-room"]["miou"] == pytest.approx(pooled.miou())
    assert m["protocols"]["whole-room"]["mean_of_fold_mious"] == pytest.approx(
        (per_run[0].miou() + per_run[1].miou()) / 2
    )
    assert m["test_areas"] == [1, 2] and "partial" in m["protocol"]
    assert (out / "metrics.json").is_file() and (out / "confusion_room.png").is_file()
    assert read_confusion_csv(out / "confusion_room.csv", CLASSES) == pooled


def test_six_fold_cli_rejects_duplicate_areas(s3dis_setup, capsys):
    c = s3dis_setup["ckpts"]
    rc = main(["eval-6fold", "--runs", str(c[1]), str(c[2]), "--areas", "3", "3", "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "test area 3 appears twice" in err and "Traceback" not in err
    rc = main(["eval-6fold", "--runs", str(c[1]), "--areas", "1", "2"])
    assert rc == 1 and "1 runs but 2 areas" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- errors
def test_eval_errors_are_clear(s3dis_setup, tmp_path, capsys):
    ckpt = str(s3dis_setup["ckpts"][5])

    def run(*argv: str) -> str:
        rc = main(["eval", "--checkpoint", *argv, "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 1 and "Traceback" not in err, err
        return err

    err = run(ckpt, "--cache", str(tmp_path / "nope"), "--protocol", "room")
    assert "does not exist" in err and "pointseg prepare s3dis" in err
    err = run(ckpt, "--area", "3", "--protocol", "room")
    assert "no rooms of Area_3" in err and "Area_1, Area_2, Area_5" in err
    err = run(ckpt, "--blocks", str(tmp_path / "noblocks"), "--protocol", "block")
    assert "pointseg blocks s3dis" in err
    # Blocks exist, but none of the requested area (Area_3 has no blocks in the test split).
    err = run(ckpt, "--area", "3", "--protocol", "block")
    assert "block-sampled Area_3" in err and "--protocol room" in err
    err = run(ckpt, "--votes", "3")
    assert "segmentation (S3DIS) checkpoint" in err and "--votes" in err
    err = run(str(tmp_path / "missing.pt"))
    assert "does not exist" in err
    # A segmentation model with the wrong number of input channels / classes.
    bad = _save_ckpt(
        tmp_path / "bad" / "best.pt", _tiny_config(in_channels=6), meta={"classes": list(CLASSES)}
    )
    err = run(str(bad), "--protocol", "room")
    assert "6 input channels" in err and "9" in err
    bad = _save_ckpt(tmp_path / "bad13" / "best.pt", _tiny_config(num_classes=5), meta={})
    assert "5 classes" in run(str(bad), "--protocol", "room")
    swapped = list(CLASSES)
    swapped[8], swapped[7] = swapped[7], swapped[8]
    bad = _save_ckpt(tmp_path / "swap" / "best.pt", _tiny_config(), meta={"classes": swapped})
    assert "class order" in run(str(bad), "--protocol", "room")
    # Weights that do not fit the stored architecture: the mismatching keys are named.
    from pointseg.checkpoint import save_checkpoint
    from pointseg.models import DeepGCN

    wrong = save_checkpoint(
        tmp_path / "wrong" / "best.pt",
        model_config=_tiny_config(),
        model_state=DeepGCN(_tiny_config(channels=12)).state_dict(),
    )
    assert "shape mismatches" in run(str(wrong))
    assert "CUDA is not available" in run(ckpt, "--device", "cuda") or torch.cuda.is_available()
    assert "bad --device" in run(ckpt, "--device", "gpu0")
    # A classification checkpoint given S3DIS options.
    cls = _save_ckpt(
        tmp_path / "cls" / "best.pt",
        _tiny_config(task="classification", in_channels=3, num_classes=4),
        meta={"task": "classification", "dataset": "modelnet40"},
    )
    err = run(str(cls), "--area", "5")
    assert "classification (ModelNet40) checkpoint" in err and "--area" in err
    err = run(str(cls), "--data", str(tmp_path / "nomodelnet"))
    assert "ModelNet folder" in err and "does not exist" in err


# ------------------------------------------------------------------------------------ ModelNet
class MeanModel(nn.Module):
    """Classification logits = linear function of the mean point: voting is predictable."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.linspace(-1, 1, 12).reshape(3, 4)
        self.calls: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, 3) -> (B, 4)
        self.calls.append(x.clone())
        return x.mean(1) @ self.w


def test_modelnet_oa_macc_and_voting():
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(10, 32, 3, generator=g)
    y = torch.randint(0, 4, (10,), generator=g)
    ds = torch.utils.data.TensorDataset(pts, y)
    m = MeanModel()
    cm = E.evaluate_modelnet(m, ds, num_classes=4, batch_size=4, votes=1, progress=False)
    expected = (pts.mean(1) @ m.w).argmax(1)
    assert cm == ConfusionMatrix(4).update(expected, y)
    assert cm.oa() == pytest.approx((expected == y).float().mean().item())
    # Votes: logits averaged over 3 scale/shift augmentations, reproducible from the seed.
    m = MeanModel()
    cm3 = E.evaluate_modelnet(m, ds, num_classes=4, batch_size=10, votes=3, seed=5, progress=False)
    assert len(m.calls) == 3 and not torch.allclose(m.calls[0], pts)
    gen = torch.Generator().manual_seed(5)
    logits = sum(E.scale_shift(pts, gen).mean(1) @ m.w for _ in range(3))
    assert cm3 == ConfusionMatrix(4).update(logits.argmax(1), y)
    assert cm3 == E.evaluate_modelnet(
        MeanModel(), ds, num_classes=4, batch_size=10, votes=3, seed=5, progress=False
    )
    # scale_shift: per-shape anisotropic scale in [2/3, 3/2] and shift in [-0.2, 0.2].
    a = E.scale_shift(torch.ones(50, 2, 3), torch.Generator().manual_seed(1))
    assert a.min() >= 2 / 3 - 0.2 - 1e-6 and a.max() <= 1.5 + 0.2 + 1e-6
    with pytest.raises(Exception, match="votes"):
        E.evaluate_modelnet(MeanModel(), ds, num_classes=4, votes=0, progress=False)


def test_modelnet_checkpoint_cli(tmp_path, capsys):
    h5py = pytest.importorskip("h5py")
    mn = pytest.importorskip("pointseg.data.modelnet")
    root = tmp_path / "mn"
    root.mkdir()
    rng = np.random.default_rng(0)
    with h5py.File(root / "ply_data_test0.h5", "w") as f:
        f["data"] = rng.normal(size=(6, 2048, 3)).astype(np.float32)
        f["label"] = rng.integers(0, 40, size=(6, 1)).astype(np.uint8)
    (root / "test_files.txt").write_text("ply_data_test0.h5\n")
    with h5py.File(root / "ply_data_train0.h5", "w") as f:
        f["data"] = rng.normal(size=(2, 2048, 3)).astype(np.float32)
        f["label"] = rng.integers(0, 40, size=(2, 1)).astype(np.uint8)
    (root / "train_files.txt").write_text("ply_data_train0.h5\n")
    cfg = _tiny_config(task="classification", in_channels=3, num_classes=40, pooling="max+mean")
    ckpt = _save_ckpt(
        tmp_path / "run" / "best.pt",
        cfg,
        meta={"classes": list(mn.MODELNET40_CLASSES), "data": {"data": str(root)}},
    )
    rc = main(
        ["eval", "--checkpoint", str(ckpt), "--num-points", "64", "--votes", "2", "--no-progress"]
    )
    assert rc == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "OA" in text and "mAcc" in text
    m = json.loads((tmp_path / "run" / "eval_modelnet40" / "metrics.json").read_text())
    cm = ConfusionMatrix.from_matrix(m["protocols"]["classification"]["confusion"])
    assert cm.total == 6 and m["oa"] == pytest.approx(cm.oa()) and m["votes"] == 2
    with open(tmp_path / "run" / "eval_modelnet40" / "per_class.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 40
    # HDF5 labels are fixed by the files: a checkpoint trained on another class order is refused.
    other = _save_ckpt(
        tmp_path / "run2" / "best.pt",
        cfg,
        meta={"classes": list(mn.MODELNET40_CLASSES)[::-1], "data": {"data": str(root)}},
    )
    assert main(["eval", "--checkpoint", str(other), "--num-points", "64", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "trained on classes" in err and "Traceback" not in err


def test_modelnet_mesh_folder_uses_checkpoint_class_order(tmp_path, capsys):
    synth = pytest.importorskip("pointseg.data.synthetic")
    classes = sorted(synth.MODELNET_SYNTH_CLASSES)[:3]
    root = tmp_path / "meshes"
    synth.synth_modelnet(root, classes=classes, per_class=1, test_per_class=2, progress=False)
    cfg = _tiny_config(task="classification", in_channels=3, num_classes=3)
    ckpt = _save_ckpt(
        tmp_path / "run" / "best.pt", cfg, meta={"classes": classes, "data": {"data": str(root)}}
    )
    out = tmp_path / "ev"
    rc = main(
        [
            "eval",
            "--checkpoint",
            str(ckpt),
            "--num-points",
            "48",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["classes"] == classes and m["votes"] == 1
    cm = ConfusionMatrix.from_matrix(m["protocols"]["classification"]["confusion"])
    np.testing.assert_array_equal(cm.support, [2, 2, 2])
    # Labels of a mesh folder follow the checkpoint's class order (not the folder listing).
    rev = _save_ckpt(
        tmp_path / "run2" / "best.pt",
        cfg,
        meta={"classes": classes[::-1], "data": {"data": str(root)}},
    )
    assert main(["eval", "--checkpoint", str(rev), "--num-points", "48", "--no-progress"]) == 0
    m = json.loads((tmp_path / "run2" / "eval_modelnet40" / "metrics.json").read_text())
    assert m["classes"] == classes[::-1]


# ------------------------------------------------------------------------------ real S3DIS rooms
REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "s3dis_raw"


def test_whole_room_on_real_area5_rooms_scores_every_point(tmp_path):
    """Real geometry: the two real Area_5 rooms (309,431 and 70,904 points) are scored point by
    point (cheap exact model, so the check is about coverage, voting and the written files)."""
    if not (REAL / "Area_5").is_dir():
        pytest.skip("real S3DIS sample rooms not available (../shared/data/s3dis_raw)")
    from pointseg.data.s3dis import prepare_s3dis

    cache = tmp_path / "cache"
    prepare_s3dis(REAL, cache, areas=[5], progress=False)
    cm, rooms = E.evaluate_rooms(
        AbsoluteModel(),
        cache,
        5,
        num_classes=C,
        class_names=list(CLASSES),
        num_point=4096,
        batch_size=32,
        predictions_dir=tmp_path / "pred",
        progress=False,
    )
    got = {r["room"]: r for r in rooms}
    assert got["conferenceRoom_1"]["points"] == 309431 and got["copyRoom_1"]["points"] == 70904
    assert cm.total == 309431 + 70904
    for name, r in got.items():
        assert r["mean_votes"] > 1.0  # overlapping blocks at stride 0.5
        with np.load(tmp_path / "pred" / f"Area_5_{name}.npz") as z:
            assert z["pred"].shape == (r["points"],)
            # The cheap model's prediction is a pure function of the normalised height.
            pos = z["xyz"].astype(np.float64) - z["xyz"].min(0)
            norm = pos / pos.max(0)
            centres = np.linspace(0, 1, C)
            logits = -((norm[:, 2:3] - centres) ** 2) * 40.0 + norm[:, 0:1] * np.arange(C) * 0.5
            agree = np.mean(z["pred"] == logits.argmax(1))
            assert agree > 0.999, agree  # float32 vs float64 near-ties only
