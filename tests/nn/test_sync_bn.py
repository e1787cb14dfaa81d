"""Synchronised BatchNorm (DDP): 2 gloo ranks, each with half the batch, equal one process with
the whole batch: outputs, input and parameter gradients, running statistics.

Covers `PointBatchNorm` (two differentiable all-reduces) and the fused EdgeConv, whose BN lives
inside its own autograd node (moments and their gradients all-reduced there), for the relu and
leaky-relu layer paths and a composite activation (elu: the textbook path syncs via its norm).
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from pointseg.engine.distributed import set_sync_batchnorm
from pointseg.graph import knn
from pointseg.nn import EdgeConv, PointBatchNorm

pytestmark = pytest.mark.ddp
KINDS = ["bn", "edge_relu", "edge_leaky", "edge_elu", "edge_norm_act"]


def make(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "bn":
        m = PointBatchNorm(8)
        m.weight.data.uniform_(0.5, 1.5)
        m.bias.data.normal_()
        return m.train()
    act = {"edge_leaky": "leaky_relu", "edge_elu": "elu"}.get(kind, "relu")
    order = "conv_norm_act" if kind == "edge_norm_act" else "conv_act_norm"
    m = EdgeConv(8, 8, act=act, order=order)
    m.norm.weight.data.uniform_(-1.5, 1.5)  # negative γ: the fused layer takes minima there
    return m.train()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 50, 8, generator=g) * 3 + 1  # off-centre: tests the moment arithmetic
    w = torch.randn(4, 50, 8, generator=g)
    return x, w


def loss(m: torch.nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    out = m(x) if isinstance(m, PointBatchNorm) else m(x, knn(x, 6))
    return (out * w).mean()


def run(m: torch.nn.Module, x: torch.Tensor, w: torch.Tensor) -> dict[str, np.ndarray]:
    x = x.clone().requires_grad_()
    loss(m, x, w).backward()
    res = {"x.grad": x.grad.numpy().copy()}
    res |= {f"{n}.grad": p.grad.numpy().copy() for n, p in m.named_parameters()}
    res |= {n: b.numpy().copy() for n, b in m.named_buffers() if b.is_floating_point()}
    return res


def worker(rank: int, port: int, queue) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        x, w = batch()
        half = slice(2 * rank, 2 * rank + 2)
        out = {}
        for kind in KINDS:
            m = make(kind)
            assert set_sync_batchnorm(m) == 1
            res = run(m, x[half], w[half])
            for key in [k for k in res if k.endswith(".grad") and k != "x.grad"]:
                g = torch.from_numpy(res[key])
                dist.all_reduce(g)  # what DDP does: average the ranks' gradients
                res[key] = (g / 2).numpy()
            out[kind] = res
        queue.put((rank, out))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


@pytest.mark.parametrize("kind", KINDS)
def test_two_synced_ranks_equal_one_process_with_the_whole_batch(ranks, kind):
    x, w = batch()
    want = run(make(kind), x, w)
    # Gradients are compared relative to the largest gradient of the module: with Conv → BN the
    # conv bias's gradient is exactly zero in theory (BN removes any shift), i.e. float noise.
    grad_scale = max(np.abs(v).max() for k, v in want.items() if k.endswith(".grad"))
    for key, value in want.items():
        if key == "x.grad":
            # each rank's loss is the mean over its half: its input gradient is twice the full one
            got = np.concatenate([ranks[0][kind][key], ranks[1][kind][key]]) / 2
        else:
            got = ranks[0][kind][key]
            np.testing.assert_allclose(ranks[1][kind][key], got, rtol=0, atol=0, err_msg=key)
        scale = grad_scale if key.endswith(".grad") else max(np.abs(value).max(), 1e-12)
        np.testing.assert_allclose(got / scale, value / scale, rtol=0, atol=2e-5, err_msg=key)


def test_per_rank_statistics_differ_without_sync():
    # The control: without the flag a rank normalises its half with its own statistics.
    x, w = batch()
    full, half = make("bn"), make("bn")
    a = full(x)[:2]
    b = half(x[:2])
    assert (a - b).abs().max() > 1e-2
