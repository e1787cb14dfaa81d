"""DDP helpers for `torchrun --nproc_per_node=N -m pointseg train …`.

`torchrun` (= `python -m torch.distributed.run`) starts N processes and sets `RANK`, `WORLD_SIZE`,
`LOCAL_RANK`, `MASTER_ADDR` and `MASTER_PORT` in each. `init_distributed()` reads them, picks the
device (`cuda:<local_rank>` when CUDA is available, else CPU) and the backend (NCCL on GPUs, gloo
on CPU), and joins the process group. Without those variables everything degrades to a single
process (rank 0 of 1) and no process group is created, so the training loop is the same code.

Synchronised BatchNorm: with world_size > 1, `wrap_model` sets `sync_stats` on every
`PointBatchNorm` (and so on the BN inside the fused EdgeConv): training-mode statistics are taken
over the global batch of all ranks, with gradients to match, on GPUs (NCCL) **and on CPU (gloo)**.
`nn.SyncBatchNorm.convert_sync_batchnorm` is not used: it would swap our channels-last layers for
channels-first `nn.SyncBatchNorm` modules (wrong axis: a crash at the first forward), it would be
bypassed by the fused EdgeConv (which applies its BN inside its own autograd node), and PyTorch's
`SyncBatchNorm` refuses CPU tensors. Every rank then holds identical running statistics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from pointseg.runtime.device import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job: `rank` of `world_size`, on `device`."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: no process group (single process)

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files: logs, checkpoints, plots."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    """WORLD_SIZE as set by torchrun (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group if there is one; return this process's `DistInfo`.

    Idempotent: if the default process group already exists it is reused.
    """
    world_size = env_world_size()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistInfo(0, 1, 0, dev, None)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank, world_size, local_rank, dev, backend)


def cleanup(info: DistInfo) -> None:
    """Leave the process group (no-op for a single process)."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum `tensor` over ranks in place (returns it); identity for a single process."""
    if info.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if `flag` is True on any rank (e.g. a stop signal seen by one rank)."""
    if not info.distributed:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    """`[obj of rank 0, obj of rank 1, …]` on every rank; `[obj]` for a single process."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_model(model: nn.Module, info: DistInfo, *, sync_bn: bool = True) -> nn.Module:
    """Move `model` to the device; with world_size > 1 wrap it in DistributedDataParallel.

    With world_size > 1 and ``sync_bn`` (default), batch statistics are synchronised across the
    ranks (see the module docstring); ``sync_bn=False`` keeps per-rank statistics.
    """
    model = model.to(info.device)
    if not info.distributed:
        return model
    set_sync_batchnorm(model, sync_bn)
    if info.device.type == "cuda":
        return nn.parallel.DistributedDataParallel(model, device_ids=[info.device])
    return nn.parallel.DistributedDataParallel(model)


def set_sync_batchnorm(model: nn.Module, enabled: bool = True) -> int:
    """Set ``sync_stats`` on every `PointBatchNorm` of `model`; returns how many were set."""
    from pointseg.nn.mlp import PointBatchNorm

    layers = [m for m in model.modules() if isinstance(m, PointBatchNorm)]
    for m in layers:
        m.sync_stats = enabled
    return len(layers)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (what checkpoints store)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
