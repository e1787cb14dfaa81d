"""MRConv, the max-relative graph convolution of DeepGCNs (Li et al., "DeepGCNs: Can GCNs Go as Deep
as CNNs?", ICCV 2019), on dense kNN graphs.

Update rule: h_i' = σ( W [h_i, max_{j ∈ N(i)} (h_j − h_i)] + b ), σ = act/norm in the configured order.
Since max_j (h_j − h_i) = max_j h_j − h_i, the neighbour max is taken on the C input channels per
point (no edge tensor is stored) and the Linear runs on N rows, not N·k.
"""

from __future__ import annotations

import torch
from torch import nn

from pointseg.nn.edge_conv import check_conv_input, neighbor_max
from pointseg.nn.mlp import (
    act_name,
    apply_norm_act,
    check_order,
    create_act,
    create_norm,
    norm_name,
)


class MRConv(nn.Module):
    r"""Max-relative graph convolution: :math:`h_i' = \sigma(W [h_i, \max_j (h_j - h_i)] + b)`.

    Parameters: ``lin`` = ``nn.Linear(2*in, out)`` (input order ``[h_i, max_j(h_j − h_i)]``), ``norm``.
    Norm statistics are over the B·N points. Shapes: ``x (B, N, in)``, ``idx (B, N, k)`` → ``(B, N, out)``.
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
        self.lin = nn.Linear(2 * in_channels, out_channels, bias=bias or self.norm_type == "none")
        self.norm = create_norm(norm, out_channels)
        self.act = create_act(act)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        check_conv_input(x, idx, self.in_channels, "MRConv")
        rel = neighbor_max(x, idx) - x  # (B, N, C): max_j (h_j − h_i)
        h = self.lin(torch.cat([x, rel], dim=-1))  # (B, N, C_out)
        return apply_norm_act(h, self.norm, self.act, self.order)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"order={self.order}, norm={self.norm_type}, act={self.act_type})"
        )
