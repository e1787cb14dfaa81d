"""GIN-style convolution (Xu et al., "How Powerful are Graph Neural Networks?", ICLR 2019) on dense
kNN graphs, as offered by DeepGCNs.

Update rule: h_i' = MLP( (1 + ε) h_i + Σ_{j ∈ N(i)} h_j ), with ε fixed or learnable. The sum runs
over the given neighbour list, which for kNN graphs includes i itself (rank 0). The MLP is two
`Lin` layers (in → out → out), each Linear with act/norm in the configured order.
"""

from __future__ import annotations

import torch
from torch import nn

from pointseg.nn.edge_conv import check_conv_input
from pointseg.nn.mlp import PointMLP, act_name, check_order, norm_name
from pointseg.nn.sage_conv import aggregate_neighbors


class GINConv(nn.Module):
    r"""GIN: :math:`h_i' = \mathrm{MLP}((1 + \epsilon) h_i + \sum_{j \in N(i)} h_j)`.

    Parameters: ``mlp`` (two `Lin` layers, ``mlp.0.lin``, ``mlp.1.lin`` …) and ``eps`` (a parameter
    when ``train_eps``, else a buffer). Shapes: ``x (B, N, in)``, ``idx (B, N, k)`` → ``(B, N, out)``.
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
        eps: float = 0.0,
        train_eps: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.order = check_order(order)
        self.norm_type, self.act_type = norm_name(norm), act_name(act)
        self.initial_eps = float(eps)
        self.mlp = PointMLP(
            [in_channels, out_channels, out_channels], order=order, norm=norm, act=act, bias=bias
        )
        if train_eps:
            self.eps = nn.Parameter(torch.tensor([self.initial_eps]))
        else:
            self.register_buffer("eps", torch.tensor([self.initial_eps]))

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()
        self.eps.data.fill_(self.initial_eps)

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        check_conv_input(x, idx, self.in_channels, "GINConv")
        h = (1 + self.eps) * x + aggregate_neighbors(x, idx, "sum")  # (B, N, C)
        return self.mlp(h)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"train_eps={isinstance(self.eps, nn.Parameter)}, order={self.order}, "
            f"norm={self.norm_type}, act={self.act_type})"
        )
