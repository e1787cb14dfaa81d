"""Per-point layers shared by every operator: norm / activation factories and `Lin` / `PointMLP`.

Everything here is channels-last: inputs are `(..., C)` (typically `(B, N, C)`); normalisation
statistics are taken over every leading position (all points of all batch elements), exactly
like `nn.BatchNorm1d` on the original code's `(B, C, N)` tensors.

Two layer orders exist in the DeepGCNs line of work and both are supported:

- ``"conv_act_norm"``: Linear → act → norm (original PyTorch deep_gcns_torch; default).
- ``"conv_norm_act"``: Linear → norm → act (original TensorFlow code).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ORDERS = ("conv_act_norm", "conv_norm_act")
NORMS = ("batch", "layer", "instance", "none")
ACTS = ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid", "none")
# Activations that are monotone non-decreasing: max over neighbours commutes with them, which the
# fused EdgeConv relies on (GELU and SiLU dip below zero, so they are not).
MONOTONE_ACTS = ("relu", "leaky_relu", "elu", "tanh", "sigmoid", "none")


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"unknown layer order {order!r}; expected one of {list(ORDERS)}")
    return order


def norm_name(norm: str | None) -> str:
    """Canonical norm name: None and "none" both mean no normalisation."""
    name = "none" if norm is None else str(norm).lower()
    if name not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {list(NORMS)} or None")
    return name


def act_name(act: str | None) -> str:
    name = "none" if act is None else str(act).lower().replace("leakyrelu", "leaky_relu")
    if name not in ACTS:
        raise ValueError(f"unknown activation {act!r}; expected one of {list(ACTS)} or None")
    return name


def apply_norm_act(
    h: torch.Tensor, norm: nn.Module | None, act: nn.Module, order: str
) -> torch.Tensor:
    """``norm(act(h))`` for "conv_act_norm", ``act(norm(h))`` for "conv_norm_act"; act only if no norm."""
    if norm is None:
        return act(h)
    if order == "conv_act_norm":
        return norm(act(h))
    return act(norm(h))


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over the ranks of the default process group.

    Every rank's loss depends on the sum, so the gradient of the summed losses w.r.t. each rank's
    input is the sum of the ranks' output gradients: backward is an all-reduce too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = x.clone()
        torch.distributed.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


def sync_active(module: nn.Module) -> bool:
    """True when `module` (a PointBatchNorm) must synchronise its batch statistics now: its
    `sync_stats` flag is set, it is training, and a process group of more than one rank exists."""
    return bool(
        getattr(module, "sync_stats", False)
        and module.training
        and torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


class PointBatchNorm(nn.BatchNorm1d):
    """`nn.BatchNorm1d` over channels-last `(..., C)` input (statistics over all leading positions).

    Same parameters and buffers as `nn.BatchNorm1d(C)`, so state dicts are interchangeable.

    ``sync_stats = True`` (set by `pointseg.engine.distributed.wrap_model` under DDP) computes
    the training-mode statistics over the whole global batch of every rank, like
    ``nn.SyncBatchNorm`` but channels-last and on CPU (gloo) as well as GPU: two differentiable
    all-reduces (sum, then centred sum of squares, in float64), so the gradients are those of the
    global batch too. `nn.SyncBatchNorm.convert_sync_batchnorm` must not be used on these layers:
    it would replace them with channels-first modules.
    """

    sync_stats = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])  # (M, C)
        if sync_active(self):
            return self._synced(x2).reshape(shape)
        return super().forward(x2).reshape(shape)

    def _synced(self, x: torch.Tensor) -> torch.Tensor:
        """Batch norm of (M, C) with mean / biased var over all ranks' rows (M_total)."""
        all_reduce = _AllReduceSum.apply
        c = x.shape[1]
        local = torch.cat([x.sum(0).double(), x.new_full((1,), x.shape[0], dtype=torch.float64)])
        total = all_reduce(local)  # (C + 1,): Σx over every rank, M_total
        count = total[c]
        mean = (total[:c] / count).to(x.dtype)  # (C,)
        xc = x - mean
        var = (all_reduce(xc.square().sum(0).double()) / count).to(x.dtype)  # biased, (C,)
        out = xc * torch.rsqrt(var + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                n = count.detach()  # 0-dim float64 tensor: no host sync on GPUs
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                unbiased = var.detach() * (n / (n - 1.0).clamp(min=1.0)).to(var.dtype)
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        return out


class PointInstanceNorm(nn.Module):
    """Instance norm for `(B, N, C)`: statistics per batch element and channel, over the N points."""

    def __init__(self, channels: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm1d(channels, eps=eps, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"instance norm expects (B, N, C) input, got shape {tuple(x.shape)}")
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def create_norm(norm: str | None, channels: int) -> nn.Module | None:
    """Build a channels-last norm layer: "batch" | "layer" | "instance" | None/"none" (→ None)."""
    name = norm_name(norm)
    if name == "batch":
        return PointBatchNorm(channels)
    if name == "layer":
        return nn.LayerNorm(channels)
    if name == "instance":
        return PointInstanceNorm(channels)
    return None


def create_act(act: str | None, *, negative_slope: float = 0.2, inplace: bool = False) -> nn.Module:
    """Build an activation module by name (see `ACTS`); None/"none" gives `nn.Identity`."""
    name = act_name(act)
    if name == "relu":
        return nn.ReLU(inplace=inplace)
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope, inplace=inplace)
    if name == "elu":
        return nn.ELU(inplace=inplace)
    if name == "gelu":
        return nn.GELU()
    if name == "silu":
        return nn.SiLU(inplace=inplace)
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    return nn.Identity()


class Lin(nn.Module):
    """One per-point layer: Linear, then act and norm in the configured order.

    ``order="conv_act_norm"``: h' = norm(act(W h + b)); ``"conv_norm_act"``: h' = act(norm(W h + b)).
    Parameters are named `lin` (``nn.Linear(in, out)``) and `norm`, so the original code's
    ``Conv1d(in, out, 1)`` + ``BatchNorm1d`` weights map onto them one to one.

    Shapes: ``(..., in_channels) -> (..., out_channels)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        order: str = "conv_act_norm",
        norm: str | None = "batch",
        act: str | None = "relu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.order = check_order(order)
        self.norm_type, self.act_type = norm_name(norm), act_name(act)
        # Without a norm layer the bias is the only offset the layer has: keep it on.
        self.lin = nn.Linear(in_channels, out_channels, bias=bias or self.norm_type == "none")
        self.norm = create_norm(norm, out_channels)
        self.act = create_act(act)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_norm_act(self.lin(x), self.norm, self.act, self.order)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"order={self.order}, norm={self.norm_type}, act={self.act_type})"
        )


class PointMLP(nn.Sequential):
    """Stack of `Lin` layers over channels ``channels[0] → channels[1] → … → channels[-1]``.

    With ``last_plain=True`` the final layer is a bare `nn.Linear` (no norm, no act), as in
    prediction heads; ``dropout`` is applied before every layer but the first.
    Shapes: ``(..., channels[0]) -> (..., channels[-1])``.
    """

    def __init__(
        self,
        channels: Sequence[int],
        *,
        order: str = "conv_act_norm",
        norm: str | None = "batch",
        act: str | None = "relu",
        bias: bool = True,
        dropout: float = 0.0,
        last_plain: bool = False,
    ) -> None:
        channels = list(channels)
        if len(channels) < 2:
            raise ValueError(f"PointMLP needs at least 2 channel sizes, got {channels}")
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
            if i > 0 and dropout > 0:
                layers.append(nn.Dropout(dropout))
            if last_plain and i == len(channels) - 2:
                layers.append(nn.Linear(c_in, c_out, bias=True))
            else:
                layers.append(Lin(c_in, c_out, order=order, norm=norm, act=act, bias=bias))
        super().__init__(*layers)
        self.channels = channels

    def reset_parameters(self) -> None:
        for layer in self:
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
