"""GraphSAGE-style convolution (Hamilton et al., "Inductive Representation Learning on Large Graphs",
NeurIPS 2017) on dense kNN graphs, as offered by DeepGCNs.

Update rule: h_i' = σ( W₁ h_i + W₂ aggr_{j ∈ N(i)} h_j + b ), aggr ∈ {max, mean, sum},
σ = act/norm in the configured order. Norm statistics are over the B·N points.
"""

from __future__ import annotations

import torch
from torch import nn

from pointseg.nn.edge_conv import check_conv_input, gather_neighbors, neighbor_max
from pointseg.nn.mlp import (
    act_name,
    apply_norm_act,
    check_order,
    create_act,
    create_norm,
    norm_name,
)

AGGRS = ("max", "mean", "sum")


def aggregate_neighbors(x: torch.Tensor, idx: torch.Tensor, aggr: str) -> torch.Tensor:
    """aggr_{j ∈ N(i)} x_j: x (B, N, C), idx (B, N, k) → (B, N, C)."""
    if aggr == "max":
        return neighbor_max(x, idx)
    # index_select saves only the index for backward; the (B, N, k, C) gather is transient.
    summed = gather_neighbors(x, idx).sum(dim=2)  # (B, N, C)
    return summed / idx.shape[-1] if aggr == "mean" else summed


class SAGEConv(nn.Module):
    r"""GraphSAGE: :math:`h_i' = \sigma(W_1 h_i + W_2\, \mathrm{aggr}_{j \in N(i)} h_j + b)`.

    Parameters: ``lin_root`` = ``nn.Linear(in, out)`` (W₁, b) and ``lin_neigh`` = ``nn.Linear(in, out,
    bias=False)`` (W₂), ``norm``. Shapes: ``x (B, N, in)``, ``idx (B, N, k)`` → ``(B, N, out)``.
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
        aggr: str = "max",
    ) -> None:
        super().__init__()
        if aggr not in AGGRS:
            raise ValueError(f"unknown aggregation {aggr!r}; expected one of {list(AGGRS)}")
        self.in_channels, self.out_channels, self.aggr = in_channels, out_channels, aggr
        self.order = check_order(order)
        self.norm_type, self.act_type = norm_name(norm), act_name(act)
        self.lin_root = nn.Linear(in_channels, out_channels, bias=bias or self.norm_type == "none")
        self.lin_neigh = nn.Linear(in_channels, out_channels, bias=False)
        self.norm = create_norm(norm, out_channels)
        self.act = create_act(act)

    def reset_parameters(self) -> None:
        self.lin_root.reset_parameters()
        self.lin_neigh.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        check_conv_input(x, idx, self.in_channels, "SAGEConv")
        h = self.lin_root(x) + self.lin_neigh(aggregate_neighbors(x, idx, self.aggr))  # (B, N, out)
        return apply_norm_act(h, self.norm, self.act, self.order)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, aggr={self.aggr}, "
            f"order={self.order}, norm={self.norm_type}, act={self.act_type})"
        )
