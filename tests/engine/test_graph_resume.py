"""GraphTrainer (`pointseg train cora`): resuming a run that stopped at its max_steps (kept in its
saved config) takes no extra step; raising max_steps continues from there."""

from __future__ import annotations

import pytest
import torch

from pointseg.cli import main


@pytest.fixture(scope="module")
def planetoid(shared_data):
    root = shared_data / "planetoid"
    if not (root / "Cora" / "raw" / "ind.cora.x").is_file():
        pytest.skip(f"Planetoid Cora not found under {root}")
    return root


def test_graph_resume_at_max_steps_takes_no_extra_step(planetoid, tmp_path, capsys):
    argv = ["train", "cora", "--data", str(planetoid), "--out", str(tmp_path), "--run", "m", "--epochs", "4",
            "--set", "model.num_layers=2", "--set", "model.channels=16", "--threads", "1",
            "--no-progress", "--no-tensorboard"]  # fmt: skip
    assert main([*argv, "--max-steps", "2"]) == 0
    cut = torch.load(tmp_path / "m" / "last.pt", weights_only=True)
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    err = capsys.readouterr().err
    again = torch.load(tmp_path / "m" / "last.pt", weights_only=True)
    assert again["step"] == cut["step"] == 2 and again["steps"] == cut["steps"]
    assert "max_steps=2 already reached" in err
    assert main([*argv, "--resume", "--max-steps", "3"]) == 0
    assert torch.load(tmp_path / "m" / "last.pt", weights_only=True)["step"] == 3
