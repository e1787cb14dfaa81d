"""DDP under torchrun: 2 CPU processes (gloo) reproduce a 1-process run with the same global batch.

The equality is meaningful because the setup removes every per-rank difference: no dropout,
deterministic dilation, and either no normalisation or synchronised BatchNorm (our PointBatchNorm
and fused EdgeConv all-reduce their batch statistics, on CPU too). Then each rank's loss is the
mean over its half of the global batch, DDP averages the gradients, and the result equals the
single-process mean gradient up to float summation order. A control run with per-rank BatchNorm
(`sync_bn=false`) must differ, so the BatchNorm test can fail.
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
# BatchNorm everywhere (the default). SGD, not Adam: Adam's first steps are ~lr·sign(g), so a
# gradient component that is zero up to float noise (summation order differs across ranks)
# would flip a whole lr step and the dynamic kNN graphs would amplify it; SGD keeps it tiny.
BN_SETS = ["model.dropout=0", "model.stochastic=false", "optimizer=sgd"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step_losses(run: Path) -> list[float]:
    return [float(r["loss"]) for r in csv.DictReader((run / "steps.csv").open())]


def run_single_and_ddp(
    tmp_path: Path, sets: list[str], name: str = "", model: str = "resgcn4_tiny"
) -> tuple[Path, Path]:
    """Train the same 2 epochs in 1 process and with torchrun in 2; returns both run folders."""
    blocks = tmp_path / "blocks"
    if not blocks.exists():
        make_blocks(blocks, points=32, per_room=4)
    args = ["--blocks", str(blocks), "--model", model, "--out", str(tmp_path), "--epochs", "2",
            "--batch-size", "4", "--val-fraction", "0", "--seed", "7", "--threads", "1", "--no-progress",
            "--no-tensorboard"]  # fmt: skip
    for s in sets:
        args += ["--set", s]

    from pointseg.cli import main

    assert main(["train", "s3dis", *args, "--run", f"single{name}"]) == 0

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "-m", "pointseg", "train", "s3dis", *args, "--run-name", f"ddp{name}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes" in proc.stderr
    return tmp_path / f"single{name}", tmp_path / f"ddp{name}"


def test_two_process_ddp_matches_single_process(tmp_path):
    single, ddp = run_single_and_ddp(tmp_path, MODEL_SETS)
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


def test_two_process_ddp_with_synchronised_batchnorm_matches_single_process(tmp_path):
    # BatchNorm in every layer (the fused EdgeConv's own BN and the heads' PointBatchNorm): with
    # synchronised statistics the 2-process run is the 1-process run, running stats included.
    single, ddp = run_single_and_ddp(tmp_path, BN_SETS)
    a, b = step_losses(single), step_losses(ddp)
    assert len(a) == len(b) == 8
    assert b == pytest.approx(a, rel=1e-4, abs=1e-5)
    wa = torch.load(single / "last.pt", weights_only=True)["model"]
    wb = torch.load(ddp / "last.pt", weights_only=True)["model"]
    assert any(k.endswith("running_var") for k in wa)
    for key, value in wa.items():
        torch.testing.assert_close(wb[key], value, rtol=1e-3, atol=1e-4, msg=key)

    # Control: per-rank statistics (sync_bn=false) give different losses from the first step.
    _, local = run_single_and_ddp(tmp_path, [*BN_SETS, "sync_bn=false"], name="_local")
    c = step_losses(local)
    assert abs(c[0] - a[0]) > 1e-4 * abs(a[0])


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


@pytest.mark.parametrize(
    "model", ["revgcn4_tiny", pytest.param("revgcn4_tiny_wt", marks=pytest.mark.slow)]
)
def test_two_process_ddp_reversible_matches_single_process(model, tmp_path):
    # RevGCN adds each block's parameter gradients to p.grad inside its backward (untied), or
    # returns them (weight-tied): DDP's gradient hooks and end-of-backward reduction must still
    # see every gradient exactly once.
    # per-rank dropout masks would differ; SGD: see BN_SETS
    sets = [*MODEL_SETS, "model.block_dropout=0", "optimizer=sgd"]
    single, ddp = run_single_and_ddp(tmp_path, sets, model=model)
    a, b = step_losses(single), step_losses(ddp)
    assert len(a) == len(b) == 8
    assert b == pytest.approx(a, rel=1e-4, abs=1e-5)  # dynamic kNN amplifies float noise
    wa = torch.load(single / "last.pt", weights_only=True)["model"]
    wb = torch.load(ddp / "last.pt", weights_only=True)["model"]
    for key, value in wa.items():
        torch.testing.assert_close(wb[key], value, rtol=1e-3, atol=1e-4, msg=key)
