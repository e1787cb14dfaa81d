"""Very deep models through the real CLI: a tiny reversible preset (stochastic dilation, shared
block dropout) trains with `pointseg train s3dis --config …` and resumes bit-for-bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from pointseg.checkpoint import load_checkpoint
from pointseg.cli import main

from .test_train import assert_same_weights, make_blocks, state


def _config(tmp: Path, blocks: Path, model: str) -> Path:
    cfg = {
        "dataset": "s3dis",
        # ε = 0.5: stochastic dilation fires often, so resume must restore the RNG exactly
        "model": {"name": model, "epsilon": 0.5},
        "blocks": str(blocks),
        "epochs": 2,
        "batch_size": 4,
        "val_fraction": 0.25,
        "seed": 3,
        "threads": 1,
        "tensorboard": False,
        "progress": False,
    }
    path = tmp / f"{model}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("model", ["revgcn4_tiny", "deqgcn_tiny"])
def test_tiny_deep_preset_trains_through_the_cli_and_resumes_exactly(model, tmp_path):
    blocks = make_blocks(tmp_path / "blocks")
    config = _config(tmp_path, blocks, model)
    common = ["--config", str(config), "--out", str(tmp_path / "runs")]
    assert main(["train", "s3dis", *common, "--run", "straight"]) == 0
    assert main(["train", "s3dis", *common, "--run", "cut", "--max-steps", "4"]) == 0
    assert state(tmp_path / "runs" / "cut")["step"] == 4
    resume = ["--run", "cut", "--resume", "--set", "max_steps=null"]  # the saved config has 4
    assert main(["train", "s3dis", *common, *resume]) == 0
    a, b = state(tmp_path / "runs" / "straight"), state(tmp_path / "runs" / "cut")
    assert a["step"] == b["step"] == 6
    assert_same_weights(a["model"], b["model"])
    assert a["steps"] == b["steps"]  # identical per-step losses
    losses = [s["loss"] for s in a["steps"]] if isinstance(a["steps"][0], dict) else None
    assert losses is None or all(torch.isfinite(torch.tensor(v)) for v in losses)
    # the checkpoint rebuilds the model from its stored config, no flags
    ck = load_checkpoint(tmp_path / "runs" / "straight" / "best.pt")
    assert ck["model_config"]["block"] == ("rev" if model.startswith("rev") else "deq")


def test_shipped_revgcn_config_resolves_to_the_preset():
    from pointseg.engine import train as T
    from pointseg.models import get_config

    root = Path(__file__).resolve().parents[2]
    cfg = T.resolve_config("s3dis", config_file=root / "configs" / "s3dis_revgcn112.yaml")
    model = get_config(cfg.model, **cfg.model_args)
    assert (model.block, model.num_blocks, model.keep_graphs) == ("rev", 112, True)
    assert (cfg.optimizer, cfg.lr, cfg.batch_size) == ("adam", 1e-3, 16)
