"""Training still learns: a tiny model overfits a handful of synthetic room blocks in seconds.

This is the cheap guard for what only the demo would otherwise show: a broken gradient (a detached
tensor, a wrong sign, a frozen BatchNorm), a loss fed the wrong labels or a label mapping that
scrambles classes makes the memorisation fail, and `make test` catches it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pointseg.data.s3dis import CLASSES
from pointseg.engine import train as T


@pytest.fixture(scope="module")
def synthetic_blocks(tmp_path_factory) -> tuple[Path, Path]:
    from pointseg.data.blocks import make_s3dis_blocks
    from pointseg.data.s3dis import prepare_s3dis
    from pointseg.data.synthetic import synth_s3dis

    root = tmp_path_factory.mktemp("learn")
    synth_s3dis(root / "raw", areas=2, rooms_per_area=1, seed=0, density=0.3, progress=False)
    assert prepare_s3dis(root / "raw", root / "cache", progress=False).ok
    make_s3dis_blocks(root / "cache", root / "blocks", num_point=128, min_points=30, seed=0,
                      progress=False)  # fmt: skip
    return root / "blocks", root / "cache"


def _overfit(blocks: Path, out: Path, lr: float, epochs: int = 30) -> dict:
    cfg = T.resolve_config(
        "s3dis",
        base=dict(
            model="resgcn4_tiny", model_args={"dropout": 0.0}, blocks=str(blocks), out_dir=str(out),
            run="overfit", test_area=2, val_fraction=0.0, max_train_samples=8, batch_size=4,
            epochs=epochs, lr=lr, scheduler="none", seed=0, threads=1, tensorboard=False, progress=False,
        ),
    )  # fmt: skip
    run = T.train(cfg)
    return torch.load(run / "last.pt", map_location="cpu", weights_only=True)


def test_tiny_model_memorises_a_handful_of_synthetic_blocks(synthetic_blocks, tmp_path):
    blocks, _ = synthetic_blocks
    last = _overfit(blocks, tmp_path / "learn", lr=0.01)
    hist = last["history"]
    assert last["step"] == 60  # 30 epochs of 2 batches of the same 8 blocks
    # Loss falls by well over half and training accuracy gets high on the memorised blocks.
    assert hist[-1]["train_loss"] < 0.4 * hist[0]["train_loss"], hist[-1]
    assert hist[-1]["train_acc"] > 0.85, hist[-1]


def test_the_overfit_check_fails_when_nothing_learns(synthetic_blocks, tmp_path):
    # Control: the same run with a learning rate too small to move the weights stays near its
    # start, so the thresholds above are not met by BatchNorm statistics or luck alone (a third of
    # the steps: nothing moves anyway).
    blocks, _ = synthetic_blocks
    hist = _overfit(blocks, tmp_path / "control", lr=1e-9, epochs=10)["history"]
    assert hist[-1]["train_acc"] < 0.6 and hist[-1]["train_loss"] > 0.8 * hist[0]["train_loss"]


def test_synthetic_labels_keep_their_meaning_in_blocks(synthetic_blocks):
    # A scrambled label mapping between files, cache and blocks shows up as geometry that does
    # not fit the class name: floors are lowest, ceilings highest (z = channel 2, absolute).
    from pointseg.data.blocks import S3DISBlocks

    blocks, _ = synthetic_blocks
    ds = S3DISBlocks(blocks)
    z = np.concatenate([ds[i][0][:, 2].numpy() for i in range(len(ds))])
    y = np.concatenate([ds[i][1].numpy() for i in range(len(ds))])
    mean_z = {c: z[y == i].mean() for i, c in enumerate(CLASSES) if (y == i).any()}
    assert min(mean_z, key=mean_z.get) == "floor"
    assert max(mean_z, key=mean_z.get) == "ceiling"
    assert mean_z["table"] < mean_z["window"] and mean_z["chair"] < mean_z["beam"]
