"""EdgeConv with a multi-layer edge MLP, as in DGCNN (Wang et al., TOG 2019, Fig. 2 / the
segmentation network's first two EdgeConv blocks).

Update rule, for a neighbour list N(i) (kNN graphs include i itself):

    h_i' = max_{j ∈ N(i)}  g_L( … g_2( σ(W_1 [h_i, h_j − h_i] + b_1) ) … )

with g_l = σ(W_l · + b_l) a per-edge `Lin` layer and σ = norm → act (``conv_norm_act``, DGCNN's
Conv2d → BatchNorm2d → LeakyReLU(0.2)) or act → norm. BatchNorm statistics are over all B·N·k
edges, as ``BatchNorm2d`` on ``(B, C, N, k)``.

The first layer uses the EdgeConv identity W_1 [h_i, h_j − h_i] = (W_s − W_n) h_i + W_n h_j
(`pointseg.nn.edge_conv`): two per-point products and one gather, never the 2C-wide edge input.
The max cannot move before the second layer (σ ∘ W_2 ∘ σ is not monotone), so the (B, N, k, C)
edge tensor of the hidden layers exists here; in inference it is built for `rows` points at a time
(default 2048 rows · k = 20 · 64 channels ≈ 10 MB), so memory stays O(B·N·C) plus one chunk.

Parameters: ``lin`` = ``nn.Linear(2·in, channels[0])`` with input order ``[h_i, h_j − h_i]`` (the
same as `EdgeConv`); ``norm`` its norm; ``mlp`` the remaining `Lin` layers.
Shapes: ``x (B, N, in_channels)``, ``idx (B, N, k)`` int64 → ``(B, N, channels[-1])``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from pointseg.nn.edge_conv import check_conv_input, flat_index
from pointseg.nn.mlp import (
    Lin,
    act_name,
    apply_norm_act,
    check_order,
    create_act,
    create_norm,
    norm_name,
)

__all__ = ["EdgeMLPConv"]

# Points per inference chunk (no autograd): bounds the (B, rows, k, C) edge tensors.
_ROWS = 2048


class EdgeMLPConv(nn.Module):
    """EdgeConv whose edge function is an MLP of ``len(channels)`` layers (see module docstring)."""

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        *,
        order: str = "conv_norm_act",
        norm: str | None = "batch",
        act: str | None = "leaky_relu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels or min(channels) < 1:
            raise ValueError(f"EdgeMLPConv: channels must be >= 1 widths, got {channels}")
        self.in_channels, self.channels = in_channels, channels
        self.out_channels = channels[-1]
        self.order = check_order(order)
        self.norm_type, self.act_type = norm_name(norm), act_name(act)
        self.lin = nn.Linear(2 * in_channels, channels[0], bias=bias or self.norm_type == "none")
        self.norm = create_norm(norm, channels[0])
        self.act = create_act(act)
        self.mlp = nn.ModuleList(
            Lin(c_in, c_out, order=order, norm=norm, act=act, bias=bias)
            for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
        )

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()
        for layer in self.mlp:
            layer.reset_parameters()

    def _edges(self, a: torch.Tensor, p: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """max over k of the MLP on edges: a (B, n, C0) centre part, p (B, N, C0), idx (B, n, k)."""
        b, n, k = idx.shape
        rows = flat_index(idx, p.shape[1]).reshape(-1)  # (B·n·k,) into the (B·N) rows of p
        pj = p.reshape(-1, p.shape[-1]).index_select(0, rows).view(b, n, k, -1)  # (B, n, k, C0)
        z = a.unsqueeze(2) + pj  # (B, n, k, C0) = W_1 [h_i, h_j − h_i] + b
        h = apply_norm_act(z.reshape(b, n * k, -1), self.norm, self.act, self.order)
        for layer in self.mlp:
            h = layer(h)  # (B, n·k, C_l)
        return h.view(b, n, k, -1).amax(dim=2)  # (B, n, C_L)

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        check_conv_input(x, idx, self.in_channels, "EdgeMLPConv")
        c = self.in_channels
        w_self, w_nb = self.lin.weight[:, :c], self.lin.weight[:, c:]  # (C0, C) each
        a = F.linear(x, w_self - w_nb, self.lin.bias)  # (B, N, C0): (W_s − W_n) h_i + b
        p = F.linear(x, w_nb)  # (B, N, C0): W_n h_j
        n = x.shape[1]
        if torch.is_grad_enabled() or self.training or n <= _ROWS:
            return self._edges(a, p, idx)
        # inference: running statistics, so rows are independent; bound the edge tensors
        return torch.cat(
            [
                self._edges(a[:, s : s + _ROWS], p, idx[:, s : s + _ROWS])
                for s in range(0, n, _ROWS)
            ],
            dim=1,
        )

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.channels}, order={self.order}, "
            f"norm={self.norm_type}, act={self.act_type})"
        )
