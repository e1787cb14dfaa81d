"""EdgeConv (Wang et al., "Dynamic Graph CNN for Learning on Point Clouds", TOG 2019) on dense kNN graphs.

Update rule, for a neighbour list N(i) (kNN graphs include i itself at rank 0):

    h_i' = max_{j ∈ N(i)}  σ( W [h_i, h_j − h_i] + b )

where σ is "act then BatchNorm" (``order="conv_act_norm"``, the original PyTorch deep_gcns_torch) or
"BatchNorm then act" (``order="conv_norm_act"``, the original TensorFlow code). BatchNorm statistics
are taken over all B·N·k edges, as the original code does with ``BatchNorm2d`` on ``(B, C, N, k)``.

The fused path never builds the 2C-wide edge features and never stores an N·k·C tensor:

1. Per point: a_i = (W₁ − W₂) h_i + b and p_i = W₂ h_i, since W [h_i, h_j − h_i] = (W₁ − W₂) h_i + W₂ h_j.
   So the edge pre-activation is z_ij = a_i + p_j.
2. BatchNorm is a per-channel affine map y = s·x + t with s = γ/√(var + eps); together with a monotone
   non-decreasing activation it is monotone in z per channel (increasing where s ≥ 0, decreasing where
   s < 0; the sign of s is the sign of γ). Hence the max over neighbours commutes with it:
   max_j σ(a_i + p_j) = σ(a_i + ext_j p_j) with ext = max (s ≥ 0) or min (s < 0).
3. Training-mode statistics (mean and biased variance of z_ij, or of act(z_ij) for conv_act_norm) are
   computed by streaming over row chunks of the (rows, k, C) edge values, which are recomputed in
   backward instead of stored.
4. For relu / leaky_relu / identity the whole layer is one autograd node (`EdgeConvLayer`) that
   saves only its input x (alive anyway) and the flat neighbour index: a and p are recomputed by
   two small matmuls in backward, ext and the edge values chunk by chunk. Other monotone activations use per-point autograd
   ops around `edge_extreme_stats` (saves a, p, ext). Memory per layer is O(B·N·C), not O(B·N·k·C).

5. The neighbour pass (extreme, statistics and their gradients per row chunk) runs in the compiled
   kernel ``pointseg._native._edge`` (pointseg/_native/edge.c, built by setup.py when a C compiler
   exists) on CPU float32 tensors: one pass per row with its k neighbour rows in L1 instead of
   5–10 torch passes over an (r, k, C) temporary. Without it, for other dtypes / devices, or with
   ``POINTSEG_NO_NATIVE=1`` (read at every call), the chunked torch body computes the same values.

Gradient of the max: it goes to the neighbour(s) attaining it; exact ties between distinct
neighbours (bit-identical features, e.g. duplicated points) share it evenly, as ``torch.amax``
does, where ``max(dim).values`` gives it all to one of them. Both are valid subgradients; for
duplicated points the parameter gradients are identical, and repeated indices of the same
neighbour behave exactly like the reference.

Running statistics are updated exactly like ``nn.BatchNorm1d`` (momentum or cumulative average,
unbiased variance for ``running_var``, ``num_batches_tracked``). `edge_conv_reference` is the textbook
gather → Linear → norm/act → max formulation used by tests and the benchmark baseline.

Where the code lives: `pointseg.nn.edge_extreme` (the chunked / native neighbour pass, steps 3
and 5), `pointseg.nn.edge_layer` (the single-node layer, step 4) and this module (`EdgeConv`,
which chooses between them, and the reference).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pointseg.nn.edge_extreme import (
    HAVE_NATIVE,
    edge_extreme_stats,
    flat_index,
    native_disabled,
    single_threaded_ops,
)
from pointseg.nn.edge_layer import LAYER_ACTS, EdgeConvLayer
from pointseg.nn.mlp import (
    MONOTONE_ACTS,
    act_name,
    apply_norm_act,
    check_order,
    create_act,
    create_norm,
    norm_name,
    sync_active,
)

__all__ = [
    "HAVE_NATIVE",
    "EdgeConv",
    "check_conv_input",
    "edge_conv_reference",
    "edge_extreme_stats",
    "flat_index",
    "gather_neighbors",
    "native_disabled",
    "neighbor_max",
]


def check_conv_input(x: torch.Tensor, idx: torch.Tensor, in_channels: int, name: str) -> None:
    """Validate ``x (B, N, in_channels)`` and ``idx (B, N, k)`` int64 with values in [0, N)."""
    if x.dim() != 3 or x.shape[-1] != in_channels:
        raise ValueError(
            f"{name}: x must be (B, N, {in_channels}) channels-last, got shape {tuple(x.shape)}"
        )
    if idx.dim() != 3 or idx.shape[:2] != x.shape[:2]:
        raise ValueError(
            f"{name}: idx must be (B, N, k) = ({x.shape[0]}, {x.shape[1]}, k) matching x, "
            f"got shape {tuple(idx.shape)}"
        )
    if idx.dtype != torch.long:
        raise ValueError(f"{name}: idx must be int64 (torch.long), got {idx.dtype}")
    if idx.numel():
        # One single-threaded pass: under shared-CPU load a 2-thread reduction costs ~8 ms.
        with single_threaded_ops():
            lo, hi = (int(v) for v in torch.aminmax(idx))
        if lo < 0 or hi >= x.shape[1]:
            raise ValueError(
                f"{name}: idx values must lie in [0, N={x.shape[1]}), got range [{lo}, {hi}]"
            )


def neighbor_max(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """max_{j ∈ N(i)} x_j per channel: x (B, N, C), idx (B, N, k) → (B, N, C); stores no edge tensor."""
    return edge_extreme_stats(x, x, idx)[0]


def gather_neighbors(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x_j for j ∈ N(i): x (B, N, C), idx (B, N, k) → (B, N, k, C)."""
    b, n, c = x.shape
    fidx = flat_index(idx, n).reshape(-1)
    return x.reshape(b * n, c).index_select(0, fidx).view(b, n, idx.shape[-1], c)


def edge_conv_reference(
    x: torch.Tensor,
    idx: torch.Tensor,
    lin: nn.Linear,
    norm: nn.Module | None,
    act: nn.Module,
    order: str = "conv_act_norm",
) -> torch.Tensor:
    """Textbook EdgeConv: gather [h_i, h_j − h_i] (B, N, k, 2C) → Linear → norm/act → max over k.

    This is what the original code computes (and stores for autograd): ~5 N·k·C-sized tensors per
    layer. Norm statistics are over all B·N·k edges (norm is applied to a (B, N·k, C_out) view).
    """
    b, n, c = x.shape
    k = idx.shape[-1]
    xj = gather_neighbors(x, idx)  # (B, N, k, C)
    xi = x.unsqueeze(2).expand(b, n, k, c)  # (B, N, k, C)
    z = lin(torch.cat([xi, xj - xi], dim=-1))  # (B, N, k, C_out)
    y = apply_norm_act(z.reshape(b, n * k, -1), norm, act, order)  # (B, N·k, C_out)
    return y.view(b, n, k, -1).max(dim=2).values


class EdgeConv(nn.Module):
    r"""EdgeConv on a dense kNN graph, fused (default) or textbook (``fused=False``).

    Paper: Wang et al., "Dynamic Graph CNN for Learning on Point Clouds", TOG 2019; as used by
    DeepGCNs (Li et al., ICCV 2019). Update rule:
    :math:`h_i' = \max_{j \in N(i)} \sigma(W [h_i, h_j - h_i] + b)`, σ = act→norm (``conv_act_norm``)
    or norm→act (``conv_norm_act``).

    Parameters: ``lin`` = ``nn.Linear(2*in, out)`` with input order ``[h_i, h_j − h_i]``; ``norm`` =
    ``nn.BatchNorm1d(out)`` (a channels-last subclass, same state dict) or None.

    Shapes: ``x (B, N, in_channels)``, ``idx (B, N, k)`` int64 → ``(B, N, out_channels)``.

    The fused path applies when norm ∈ {batch, none} and the activation is monotone non-decreasing
    (``MONOTONE_ACTS``); with ``conv_act_norm`` and training-mode BatchNorm the activation must
    also be relu / leaky_relu / none. Otherwise (or with ``fused=False``) the reference path runs.
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
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.order = check_order(order)
        self.norm_type, self.act_type = norm_name(norm), act_name(act)
        self.fused = fused
        self.lin = nn.Linear(2 * in_channels, out_channels, bias=bias or self.norm_type == "none")
        self.norm = create_norm(norm, out_channels)
        self.act = create_act(act)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()

    def _fusable(self, batch_stats: bool) -> bool:
        if self.norm_type not in ("batch", "none") or self.act_type not in MONOTONE_ACTS:
            return False
        if self.norm is not None and batch_stats and self.order == "conv_act_norm":
            return self.act_type in ("relu", "leaky_relu", "none")
        return True

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        check_conv_input(x, idx, self.in_channels, "EdgeConv")
        norm = self.norm
        batch_stats = norm is not None and (norm.training or norm.running_mean is None)
        if not (self.fused and self._fusable(batch_stats)):
            return edge_conv_reference(x, idx, self.lin, norm, self.act, self.order)

        if self.act_type in LAYER_ACTS:
            return self._forward_layer(x, idx, batch_stats)
        if batch_stats and sync_active(norm):
            # other activations under synchronised BN: the textbook path, whose PointBatchNorm
            # synchronises itself (more memory, same result)
            return edge_conv_reference(x, idx, self.lin, norm, self.act, self.order)
        return self._forward_composite(x, idx, batch_stats)

    def _forward_layer(self, x: torch.Tensor, idx: torch.Tensor, batch_stats: bool) -> torch.Tensor:
        """relu / leaky_relu / identity: the whole layer as one autograd node (`EdgeConvLayer`)."""
        b, n, c = x.shape
        norm = self.norm
        has_norm = norm is not None
        gamma = norm.weight if has_norm and norm.affine else None
        beta = norm.bias if has_norm and norm.affine else None
        slope = float(self.act.negative_slope) if self.act_type == "leaky_relu" else 0.0
        count = idx.numel()  # edges in this batch
        total = None
        if batch_stats and sync_active(norm):
            # Synchronised BN under DDP: statistics over every rank's edges (see PointBatchNorm).
            # a 0-dim float64 tensor, never .item(): no host sync per layer on GPUs
            total = torch.tensor(float(count), dtype=torch.float64, device=x.device)
            torch.distributed.all_reduce(total)
            count = total
        cfg = (
            self.order,
            self.act_type,
            slope,
            has_norm,
            batch_stats,
            float(norm.eps) if has_norm else 0.0,
            total,
        )
        out, mean, var = EdgeConvLayer.apply(
            x.reshape(b * n, c),
            self.lin.weight,
            self.lin.bias,
            gamma,
            beta,
            flat_index(idx, n),
            norm.running_mean if has_norm else None,
            norm.running_var if has_norm else None,
            cfg,
        )
        if batch_stats:
            self._update_running_stats(mean, var, count)
        return out.view(b, n, self.out_channels)

    def _forward_composite(
        self, x: torch.Tensor, idx: torch.Tensor, batch_stats: bool
    ) -> torch.Tensor:
        """Any monotone act: per-point ops + `edge_extreme_stats`, autograd for the rest."""
        norm = self.norm
        c = self.in_channels
        w_self, w_nb = self.lin.weight[:, :c], self.lin.weight[:, c:]  # (C_out, C) each
        a = F.linear(x, w_self - w_nb, self.lin.bias)  # (B, N, C_out): (W₁ − W₂) h_i + b
        p = F.linear(x, w_nb)  # (B, N, C_out): W₂ h_j
        if norm is None:
            ext = edge_extreme_stats(a, p, idx)[0]  # (B, N, C_out) = max_j p_j
            return self.act(a + ext)

        gamma = norm.weight if norm.affine else None
        # BN scale γ/√(var+eps) has the sign of γ: take the min over neighbours where it is negative.
        sgn = None if gamma is None else torch.where(gamma.detach() >= 0, 1.0, -1.0).to(p.dtype)
        if batch_stats:
            stats = 2 if self.order == "conv_act_norm" and self.act_type != "none" else 1
            slope = float(self.act.negative_slope) if self.act_type == "leaky_relu" else 0.0
            ext, mean, var = edge_extreme_stats(a, p, idx, sgn, stats=stats, slope=slope)
            self._update_running_stats(mean, var, idx.numel())
        else:
            ext = edge_extreme_stats(a, p, idx, sgn)[0]
            mean, var = norm.running_mean, norm.running_var
        scale = torch.rsqrt(var + norm.eps)  # (C_out,)
        if gamma is not None:
            scale = scale * gamma
        shift = -mean * scale
        if norm.affine:
            shift = shift + norm.bias
        if self.order == "conv_norm_act":
            return self.act((a + ext) * scale + shift)
        return self.act(a + ext) * scale + shift

    @torch.no_grad()
    def _update_running_stats(
        self, mean: torch.Tensor, var: torch.Tensor, count: int | torch.Tensor
    ) -> None:
        """Same update as ``F.batch_norm`` in training mode (running_var gets the unbiased var)."""
        norm = self.norm
        if not (norm.training and norm.track_running_stats):
            return
        norm.num_batches_tracked.add_(1)
        if norm.momentum is None:
            factor = 1.0 / float(norm.num_batches_tracked)
        else:
            factor = norm.momentum
        norm.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
        if isinstance(count, torch.Tensor):  # synchronised BN: a 0-dim tensor (no host sync)
            unbiased = var.detach() * (count / (count - 1).clamp(min=1)).to(var.dtype)
        else:
            unbiased = var.detach() * (count / max(count - 1, 1))
        norm.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"order={self.order}, norm={self.norm_type}, act={self.act_type}, fused={self.fused})"
        )
