"""GENConv, the generalized graph convolution of DeeperGCN (Li et al., "DeeperGCN: All You Need to
Train Deeper GCNs", 2020), on sparse ``edge_index`` graphs.

Update rule, for messages from sources j to targets i (PyG's ``source_to_target`` flow):

    m_ij  = ReLU(h_j + e_ij) + ε                      (E, C)   e_ij: edge features (optional)
    a_i   = AGG_{j ∈ N(i)} m_ij                       (N, C)   softmax(β) | powermean(p) | sum | mean | max
    a_i  ← MsgNorm(h_i, a_i) = s · ‖h_i‖₂ · a_i / ‖a_i‖₂      (optional, learnable scale s)
    h_i' = MLP(h_i + a_i)                             (N, C_out)

With ``in_channels != out_channels`` the sources pass through ``lin_src`` and the root through
``lin_dst``; edge features of another width pass through ``lin_edge``.

Ours versus PyG's `torch_geometric.nn.GENConv` (same parameter names and order, so state dicts are
interchangeable; tested equal on the same weights):

- power mean: PyG clamps messages and result to [1e-4, 100] (every message of a negative
  pre-activation becomes 1e-4 instead of ε, large ones saturate with zero gradient). Ours is the
  exact power mean, evaluated in log space without clamping (`pointseg.nn.aggregation`); the two
  agree wherever PyG's clamp is inactive.
- MLP norm: ours uses `pointseg.nn.mlp.create_norm` (``PointBatchNorm``, same state dict as
  ``BatchNorm1d``; synchronised under DDP like the rest of the backbone). ``"instance"`` is not
  offered: on a single sparse graph instance norm over nodes equals an affine-free batch norm.
- ``dropout`` of the hidden MLP layers is exposed (PyG hard-codes 0 in GENConv).
- softmax with a learnable β is always fully differentiable; the semi-gradient variant
  (``semi_grad=True``) is only used when asked, never silently.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.norm import MessageNorm

from pointseg.nn.aggregation import create_aggregation
from pointseg.nn.mlp import create_norm, norm_name


def gen_mlp(
    channels: list[int], *, norm: str | None, bias: bool, dropout: float = 0.0
) -> nn.Sequential:
    """Linear → [norm → ReLU → dropout → Linear]*: PyG's GENConv MLP layout (indices match)."""
    layers: list[nn.Module] = []
    for i in range(1, len(channels)):
        layers.append(nn.Linear(channels[i - 1], channels[i], bias=bias))
        if i < len(channels) - 1:
            n = create_norm(norm, channels[i])
            if n is not None:
                layers.append(n)
            layers.append(nn.ReLU())
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class GENConv(MessagePassing):
    r"""DeeperGCN's GENConv: :math:`h_i' = \mathrm{MLP}(h_i + \mathrm{AGG}_j(\mathrm{ReLU}(h_j + e_{ij}) + \epsilon))`.

    Args:
        in_channels, out_channels: node feature widths.
        aggr: "softmax" | "powermean" | "sum" | "mean" | "max" (see `pointseg.nn.aggregation`).
        t, learn_t, semi_grad: softmax inverse temperature β, learnable or not, semi-gradient.
        p, learn_p: power of the power mean, learnable or not.
        msg_norm, learn_msg_scale: MsgNorm and whether its scale s is learned.
        norm: norm of the hidden MLP layers ("batch" | "layer" | None).
        num_layers, expansion: MLP depth (1 = one Linear) and hidden width factor.
        eps: ε added to every message. bias: bias of every Linear. edge_dim: edge feature width
            (None: edge features, if given, must already have ``out_channels`` channels).
        dropout: dropout between hidden MLP layers.

    Shapes: ``x (N, in)``, ``edge_index (2, E)`` int64, ``edge_attr (E, edge_dim)`` → ``(N, out)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        aggr: str = "softmax",
        t: float = 1.0,
        learn_t: bool = False,
        semi_grad: bool = False,
        p: float = 1.0,
        learn_p: bool = False,
        msg_norm: bool = False,
        learn_msg_scale: bool = False,
        norm: str | None = "batch",
        num_layers: int = 2,
        expansion: int = 2,
        eps: float = 1e-7,
        bias: bool = False,
        edge_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        if norm_name(norm) == "instance":
            raise ValueError("GENConv: norm must be 'batch', 'layer' or None on sparse graphs")
        if num_layers < 1:
            raise ValueError(f"GENConv: num_layers must be >= 1, got {num_layers}")
        agg = create_aggregation(
            aggr, t=t, learn_t=learn_t, semi_grad=semi_grad, p=p, learn_p=learn_p
        )
        super().__init__(aggr=agg)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.aggr_name = aggr
        self.eps = float(eps)
        self.norm_type = norm_name(norm)
        if in_channels != out_channels:
            self.lin_src = nn.Linear(in_channels, out_channels, bias=bias)
        if edge_dim is not None and edge_dim != out_channels:
            self.lin_edge = nn.Linear(edge_dim, out_channels, bias=bias)
        if in_channels != out_channels:
            self.lin_dst = nn.Linear(in_channels, out_channels, bias=bias)
        channels = [out_channels] + [out_channels * expansion] * (num_layers - 1) + [out_channels]
        self.mlp = gen_mlp(channels, norm=norm, bias=bias, dropout=dropout)
        self.msg_norm = MessageNorm(learn_msg_scale) if msg_norm else None

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for m in self.mlp:
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        for name in ("lin_src", "lin_edge", "lin_dst", "msg_norm"):
            m = getattr(self, name, None)
            if m is not None:
                m.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None) -> Tensor:
        check_sparse_input(x, edge_index, self.in_channels, "GENConv")
        src = self.lin_src(x) if hasattr(self, "lin_src") else x  # (N, out)
        if edge_attr is not None:
            if hasattr(self, "lin_edge"):
                edge_attr = self.lin_edge(edge_attr)  # (E, out)
            if edge_attr.shape != (edge_index.shape[1], self.out_channels):
                raise ValueError(
                    f"GENConv: edge_attr must be (E, {self.out_channels}) = "
                    f"({edge_index.shape[1]}, {self.out_channels}) (or set edge_dim), "
                    f"got {tuple(edge_attr.shape)}"
                )
        out = self.propagate(edge_index, x=(src, x), edge_attr=edge_attr, size=None)  # (N, out)
        if self.msg_norm is not None:
            out = self.msg_norm(x, out)
        dst = self.lin_dst(x) if hasattr(self, "lin_dst") else x
        return self.mlp(out + dst)

    def message(self, x_j: Tensor, edge_attr: Tensor | None) -> Tensor:
        msg = x_j if edge_attr is None else x_j + edge_attr  # (E, C)
        return msg.relu() + self.eps

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"aggr={self.aggr_name}, msg_norm={self.msg_norm is not None}, norm={self.norm_type})"
        )


def check_sparse_input(x: Tensor, edge_index: Tensor, in_channels: int, name: str) -> None:
    """Validate ``x (N, in_channels)`` and ``edge_index (2, E)`` int64 with values in [0, N)."""
    if x.dim() != 2 or x.shape[-1] != in_channels:
        raise ValueError(f"{name}: x must be (N, {in_channels}), got shape {tuple(x.shape)}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"{name}: edge_index must be (2, E), got shape {tuple(edge_index.shape)}")
    if edge_index.dtype != torch.long:
        raise ValueError(f"{name}: edge_index must be int64 (torch.long), got {edge_index.dtype}")
