"""The DeepGCNs convolutions on sparse ``edge_index`` graphs (general graphs: PPI, OGB, citations).

Each class subclasses its dense counterpart in `pointseg.nn` and keeps its parameters, names and
constructor, so a state dict moves between the two paths unchanged; only the neighbourhood is
given differently:

- dense: ``x (B, N, C)`` and a neighbour list ``idx (B, N, k)`` (kNN graphs, self included);
- sparse: ``x (N, C)`` and ``edge_index (2, E)``, row 0 = source j, row 1 = target i (PyG's
  ``source_to_target`` flow). Messages flow j → i and are aggregated per target.

A dense neighbour list is the edge list ``j = idx[b, i, r] + b·N → i + b·N`` (`idx_to_edge_index`),
and on that graph both paths compute the same function (tested, including BatchNorm statistics,
which EdgeConv takes over all edges in both). Nodes without incoming edges aggregate to 0 (PyG's
convention); the "mean" of SAGE divides by the in-degree (= k on a kNN graph).

`SPARSE_CONV_REGISTRY` holds the names of `pointseg.nn.conv.CONV_REGISTRY` plus "gen" (GENConv)
and "gcn" (PyG's GCNConv, for the classic GCN baselines).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from pointseg.nn.edge_conv import EdgeConv
from pointseg.nn.gen_conv import GENConv, check_sparse_input
from pointseg.nn.gin_conv import GINConv
from pointseg.nn.mlp import apply_norm_act
from pointseg.nn.mr_conv import MRConv
from pointseg.nn.sage_conv import SAGEConv


def idx_to_edge_index(idx: Tensor) -> Tensor:
    """Dense neighbour lists ``idx (B, N, k)`` → ``edge_index (2, B·N·k)`` over the B·N flattened nodes."""
    b, n, k = idx.shape
    offsets = torch.arange(b, device=idx.device).view(-1, 1, 1) * n
    src = (idx + offsets).reshape(-1)  # (B·N·k,) neighbour j
    dst = torch.arange(b * n, device=idx.device).repeat_interleave(k)  # (B·N·k,) centre i
    return torch.stack([src, dst])


def _aggregate(msg: Tensor, dst: Tensor, num_nodes: int, reduce: str) -> Tensor:
    """Per-target reduction of messages ``(E, C)`` → ``(N, C)``; empty targets give 0."""
    return scatter(msg, dst, dim=0, dim_size=num_nodes, reduce=reduce)


class SparseEdgeConv(EdgeConv):
    r"""EdgeConv on ``edge_index``: :math:`h_i' = \max_{j \to i} \sigma(W [h_i, h_j - h_i] + b)`.

    Same parameters as `pointseg.nn.EdgeConv` (``lin``, ``norm``); norm statistics over the E edges.
    Builds the (E, 2C) edge features (textbook form; general graphs have no fixed k to fuse over).
    """

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:  # type: ignore[override]
        check_sparse_input(x, edge_index, self.in_channels, "SparseEdgeConv")
        src, dst = edge_index
        xi, xj = x.index_select(0, dst), x.index_select(0, src)  # (E, C) each
        z = apply_norm_act(self.lin(torch.cat([xi, xj - xi], -1)), self.norm, self.act, self.order)
        return _aggregate(z, dst, x.shape[0], "max")  # (N, C_out)


class SparseMRConv(MRConv):
    r"""MRConv on ``edge_index``: :math:`h_i' = \sigma(W [h_i, \max_{j \to i}(h_j - h_i)] + b)`."""

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:  # type: ignore[override]
        check_sparse_input(x, edge_index, self.in_channels, "SparseMRConv")
        src, dst = edge_index
        rel = _aggregate(x.index_select(0, src) - x.index_select(0, dst), dst, x.shape[0], "max")
        h = self.lin(torch.cat([x, rel], dim=-1))  # (N, C_out)
        return apply_norm_act(h, self.norm, self.act, self.order)


class SparseSAGEConv(SAGEConv):
    r"""GraphSAGE on ``edge_index``: :math:`h_i' = \sigma(W_1 h_i + W_2\,\mathrm{aggr}_{j \to i} h_j + b)`."""

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:  # type: ignore[override]
        check_sparse_input(x, edge_index, self.in_channels, "SparseSAGEConv")
        src, dst = edge_index
        neigh = _aggregate(x.index_select(0, src), dst, x.shape[0], self.aggr)  # (N, C)
        h = self.lin_root(x) + self.lin_neigh(neigh)
        return apply_norm_act(h, self.norm, self.act, self.order)


class SparseGINConv(GINConv):
    r"""GIN on ``edge_index``: :math:`h_i' = \mathrm{MLP}((1 + \epsilon) h_i + \sum_{j \to i} h_j)`."""

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:  # type: ignore[override]
        check_sparse_input(x, edge_index, self.in_channels, "SparseGINConv")
        src, dst = edge_index
        h = (1 + self.eps) * x + _aggregate(x.index_select(0, src), dst, x.shape[0], "sum")
        return self.mlp(h)


class SparseGCNConv(nn.Module):
    r"""PyG's `GCNConv` (Kipf & Welling, 2017): :math:`H' = \hat D^{-1/2} (A + I) \hat D^{-1/2} H W + b`,
    optionally followed by norm / act. Sparse graphs only (no dense twin); no edge features. Used
    for the classic GCN baselines (Planetoid's 2-layer GCN, OGB's 5-layer molecule GCN)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        norm: str | None = None,
        act: str | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        from pointseg.nn.mlp import create_act, create_norm

        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv = GCNConv(in_channels, out_channels, bias=bias)
        self.norm = create_norm(norm, out_channels) if norm else None
        self.act = create_act(act) if act else None

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        check_sparse_input(x, edge_index, self.in_channels, "SparseGCNConv")
        h = self.conv(x, edge_index)  # (N, C_out)
        if self.norm is not None:
            h = self.norm(h)
        return self.act(h) if self.act is not None else h


SPARSE_CONV_REGISTRY: dict[str, type[nn.Module]] = {
    "gcn": SparseGCNConv,
    "edge": SparseEdgeConv,
    "mr": SparseMRConv,
    "sage": SparseSAGEConv,
    "gin": SparseGINConv,
    "gen": GENConv,
}


def create_sparse_conv(name: str, in_channels: int, out_channels: int, **kwargs) -> nn.Module:
    """Build the sparse-graph convolution `name` (see `SPARSE_CONV_REGISTRY`).

    Maps ``x (N, in), edge_index (2, E) → (N, out)`` (GENConv also takes ``edge_attr``). Keywords
    are those of the class (``order``, ``norm``, ``act``… for the DeepGCNs convs; ``aggr``, ``t``,
    ``learn_t``… for "gen"). Unknown names raise ValueError listing the valid ones.
    """
    try:
        cls = SPARSE_CONV_REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown sparse graph convolution {name!r}; valid names: {sorted(SPARSE_CONV_REGISTRY)}"
        ) from None
    return cls(in_channels, out_channels, **kwargs)
