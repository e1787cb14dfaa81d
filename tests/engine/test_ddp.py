"""DDP under torchrun: 2 CPU processes (gloo) reproduce a 1-process run with the same global batch.

The equality is meaningful because the setup removes every per-rank difference: no normalisation
(BatchNorm statistics would be per-rank on CPU: SyncBatchNorm is GPU-only in PyTorch), no dropout,
deterministic dilation. Then each rank's loss is the mean over its half of the global batch, DDP
averages the gradients, and the result equals the single-process mean gradient up to float
summation order.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pointseg.engine import train as T

from .test_train import make_blocks

pytestmark = pytest.mark.ddp
ROOT = Path(__file__).resolve().parents[2]

MODEL_SETS = ["model.norm=none", "model.dropout=0", "model.stochastic=false"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step_losses(run: Path) -> list[float]:
    return [float(r["loss"]) for r in csv.DictReader((run / "steps.csv").open())]


def test_two_process_ddp_matches_single_process(tmp_path):
    blocks = make_blocks(tmp_path / "blocks", points=32, per_room=4)
    args = ["--blocks", str(blocks), "--model", "resgcn4_tiny", "--out", str(tmp_path), "--epochs", "2",
            "--batch-size", "4", "--val-fraction", "0", "--seed", "7", "--threads", "1", "--no-progress",
            "--no-tensorboard"]  # fmt: skip
    for s in MODEL_SETS:
        args += ["--set", s]

    from pointseg.cli import main

    assert main(["train", "s3dis", *args, "--run", "single"]) == 0

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "-m", "pointseg", "train", "s3dis", *args, "--run-name", "ddp"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes" in proc.stderr

    single, ddp = tmp_path / "single", tmp_path / "ddp"
    a, b = step_losses(single), step_losses(ddp)
    assert len(a) == len(b) == 8  # 16 training blocks (Areas 1-3) / global batch 4 × 2 epochs
    assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
    wa = torch.load(single / "last.pt", weights_only=True)
    wb = torch.load(ddp / "last.pt", weights_only=True)
    assert wb["world_size"] == 2 and len(wb["rng"]) == 2  # every rank's RNG state is saved
    for key, value in wa["model"].items():
        torch.testing.assert_close(wb["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    # Only rank 0 writes: one log row per epoch, not one per process.
    rows = list(csv.DictReader((ddp / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]


def test_ddp_helpers_single_process_defaults(monkeypatch):
    from pointseg.engine import distributed as D

    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    info = D.init_distributed("cpu")
    assert (info.rank, info.world_size, info.is_main, info.distributed) == (0, 1, True, False)
    assert info.device == torch.device("cpu")
    t = torch.ones(3)
    assert torch.equal(D.all_reduce_sum(t, info), torch.ones(3))
    assert D.all_gather_object({"a": 1}, info) == [{"a": 1}]
    assert D.any_rank(True, info) and not D.any_rank(False, info)
    model = torch.nn.Linear(2, 2)
    assert D.unwrap_model(D.wrap_model(model, info)) is model
    if not torch.cuda.is_available():
        from pointseg.errors import ConfigError

        with pytest.raises(ConfigError, match="CUDA is not available"):
            D.resolve_device("cuda")


def test_batch_must_split_evenly_over_processes(tmp_path):
    from pointseg.engine import distributed as D
    from pointseg.errors import ConfigError

    blocks = make_blocks(tmp_path / "b")
    cfg = T.resolve_config(
        "s3dis",
        base={
            "blocks": str(blocks),
            "model": "resgcn4_tiny",
            "batch_size": 5,
            "out_dir": str(tmp_path),
        },
    )
    with pytest.raises(ConfigError, match="not divisible by the 2 processes"):
        T.Trainer(cfg, D.DistInfo(rank=0, world_size=2))
