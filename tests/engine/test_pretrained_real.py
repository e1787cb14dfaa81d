"""The converted published DGCNN on a real S3DIS room: `pointseg eval` (whole-room) and
`pointseg predict` on a PLY of the same room give the same labels, both fed the recipe stored in
the checkpoint. Skipped, saying why, without ../shared/data.

The room is a 1.5 m × 1.5 m corner of Area_5/conferenceRoom_1 (ceiling, floor, table, sofa) (the real raw files, cropped line by line into
a temporary raw tree, then `pointseg prepare`), so the test runs in seconds on a CPU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pointseg.cli import main
from tests.conftest import SHARED_DATA

MODEL_T7 = SHARED_DATA / "pretrained" / "dgcnn_s3dis" / "model_5.t7"
ROOM = SHARED_DATA / "s3dis_raw" / "Area_5" / "conferenceRoom_1"

pytestmark = pytest.mark.skipif(
    not (MODEL_T7.is_file() and ROOM.is_dir()),
    reason=f"the published DGCNN model or the real rooms are not in {SHARED_DATA}",
)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "dgcnn_s3dis_area5.pt"
    assert main(["convert", "--original", str(MODEL_T7), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def cropped_cache(tmp_path_factory):
    """A corner of the real room in the raw Stanford layout, prepared into a room cache."""
    root = tmp_path_factory.mktemp("raw")
    ann = root / "Area_5" / "conferenceRoom_1" / "Annotations"
    ann.mkdir(parents=True)
    files = sorted((ROOM / "Annotations").glob("*.txt"))
    lo = np.min([np.loadtxt(f, usecols=(0, 1)).min(axis=0) for f in files], axis=0)
    for f in files:
        lines = f.read_text().splitlines()
        xy = np.array([[float(v) for v in ln.split()[:2]] for ln in lines])
        keep = ((xy - lo) < 1.5).all(axis=1)
        if keep.any():
            (ann / f.name).write_text("\n".join(ln for ln, k in zip(lines, keep, strict=True)
                                                  if k) + "\n")  # fmt: skip
    cache = tmp_path_factory.mktemp("cache")
    argv = ["prepare", "s3dis", "--raw", str(root), "--out", str(cache), "--workers", "1",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    return cache


def test_predict_on_a_real_room_ply_equals_eval_whole_room(converted, cropped_cache, tmp_path):
    from pointseg.data.ply import write_ply
    from pointseg.data.s3dis import load_room

    out = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(converted), "--cache", str(cropped_cache), "--area", "5",
            "--protocol", "room", "--stride", "1.0", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    room_metrics = metrics["protocols"]["whole-room"]
    assert room_metrics["settings"]["centering"] == "sampled"  # the checkpoint's recipe
    assert room_metrics["oa"] > 0.6  # a real model on a real room (measured: see README)
    evaluated = np.load(out / "predictions" / "Area_5_conferenceRoom_1.npz")

    room = load_room(cropped_cache / "Area_5" / "conferenceRoom_1.npz")
    ply = tmp_path / "conferenceRoom_1.ply"
    write_ply(ply, room["xyz"], rgb=room["rgb"])
    seg = tmp_path / "seg.npz"
    argv = ["predict", "--checkpoint", str(converted), "--input", str(ply), "--out", str(seg),
            "--format", "npz", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    predicted = np.load(seg)
    np.testing.assert_array_equal(predicted["xyz"], evaluated["xyz"])
    np.testing.assert_array_equal(predicted["pred"], evaluated["pred"])
