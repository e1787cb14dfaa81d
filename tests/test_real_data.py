"""Real S3DIS rooms end to end through the CLI: prepare → blocks → train (Area_1) → eval (Area_5).

Uses the four real rooms in ../shared/data/s3dis_raw (read-only; skipped when absent) at a small
size: blocks of 256 points, a tiny model, one epoch on 24 blocks, whole-room evaluation of every
point of the two Area_5 rooms (380,335 points) at stride 1.0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pointseg.cli import main

RAW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "s3dis_raw"
# Classes present in the real sample rooms (SOURCES.md): no column, window or bookcase.
PRESENT = {"beam", "wall", "ceiling", "chair", "board", "clutter", "door", "floor", "sofa", "table"}


@pytest.fixture(scope="module")
def raw() -> Path:
    if not (RAW / "Area_1").is_dir() or not (RAW / "Area_5").is_dir():
        pytest.skip(f"real S3DIS sample rooms not found at {RAW}")
    return RAW


def test_prepare_train_eval_on_real_rooms(raw, tmp_path, capsys):
    cache, blocks, runs = tmp_path / "cache", tmp_path / "blocks", tmp_path / "runs"
    assert main(["prepare", "s3dis", "--raw", str(raw), "--out", str(cache), "--no-progress"]) == 0
    assert main(["blocks", "s3dis", "--cache", str(cache), "--out", str(blocks), "--split", "train",
                 "--num-point", "256", "--areas", "1", "--no-progress"]) == 0  # fmt: skip
    rc = main(["train", "s3dis", "--blocks", str(blocks), "--cache", str(cache), "--test-area", "5",
               "--model", "resgcn4_tiny", "--epochs", "1", "--batch-size", "8", "--max-train-samples", "24",
               "--max-val-samples", "8", "--out", str(runs), "--run", "real", "--threads", "1",
               "--no-progress", "--no-tensorboard"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    run = runs / "real"
    assert {p.name for p in run.iterdir()} >= {
        "config.yaml",
        "last.pt",
        "best.pt",
        "log.csv",
        "curves.png",
    }
    # Validation came from Area_1 (the only training area), never from the test area.
    from pointseg.checkpoint import load_checkpoint

    data = load_checkpoint(run / "best.pt")["meta"]["data"]
    assert data["test_area"] == 5 and data["train_areas"] == [1]
    assert data["val_rooms"] and all(r.startswith("Area_1_") for r in data["val_rooms"])

    out = tmp_path / "eval"
    rc = main(["eval", "--checkpoint", str(run), "--protocol", "room", "--stride", "1.0", "--batch-size", "32",
               "--out", str(out), "--no-progress", "--no-predictions"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert int(metrics["test_area"]) == 5
    room = next(v for k, v in metrics["protocols"].items() if "room" in k)
    confusion = room["confusion"]
    assert sum(map(sum, confusion)) == 309_431 + 70_904  # every original point of both Area_5 rooms
    per = room["per_class"]
    # Every class present in the rooms is reported with a defined IoU; absent ones have no support.
    assert {name for name, row in per.items() if row["support"] > 0} == PRESENT
    for name in PRESENT:
        assert 0.0 <= per[name]["iou"] <= 1.0
    assert all(0.0 <= room[k] <= 1.0 for k in ("oa", "macc", "miou"))
    assert room["points"] == 309_431 + 70_904
    per_class = (out / "per_class.csv").read_text()
    for name in PRESENT:
        assert name in per_class
