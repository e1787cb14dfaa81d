"""Deep GCN blocks on dense point tensors: plain, residual, dense (DeepGCNs, Li et al., ICCV 2019)
and pre-activation residual "res+" (DeeperGCN, Li et al., 2020).

Blocks receive built modules: a graph convolution ``conv`` (``conv(x (B, N, C), idx (B, N, k))``) and,
optionally, a graph module ``graph`` (e.g. `pointseg.graph.DilatedKnnGraph`, ``graph(x) -> idx``).

Every block has the same call signature::

    out, idx_used = block(x, idx=None)

- **dynamic**: ``idx`` is None and the block has a ``graph``: the kNN graph is rebuilt from the
  block's own input features ``x`` (no gradient flows through the graph);
- **static**: ``idx`` (B, N, k) is given and used as is (a given ``idx`` always wins over ``graph``).

``idx_used`` is returned so callers can log, reuse or check the graph.

The same blocks run on sparse general graphs: build them around a conv of
`pointseg.nn.sparse_conv` and pass ``idx = edge_index (2, E)`` with ``x (N, C)`` (always static;
extra keywords such as ``edge_attr=`` go to the conv). Norms then take statistics over the N nodes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pointseg.nn.mlp import create_act, create_norm

Graph = Callable[[torch.Tensor], torch.Tensor]


class _GraphBlock(nn.Module):
    def __init__(self, conv: nn.Module, graph: nn.Module | None = None) -> None:
        super().__init__()
        for attr in ("in_channels", "out_channels"):
            if not hasattr(conv, attr):
                raise ValueError(f"{type(self).__name__}: conv must define `{attr}`; got {conv!r}")
        self.conv = conv
        self.graph = graph

    @property
    def in_channels(self) -> int:
        return self.conv.in_channels

    def _graph(self, x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        if idx is not None:
            return idx
        if self.graph is None:
            raise ValueError(
                f"{type(self).__name__}: static block (no graph module) needs idx (B, N, k) in forward"
            )
        with torch.no_grad():
            return self.graph(x.detach())

    def extra_repr(self) -> str:
        return "dynamic" if self.graph is not None else "static"


class PlainBlock(_GraphBlock):
    """h' = conv(h). Channels: in → conv.out_channels."""

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def forward(
        self, x: torch.Tensor, idx: torch.Tensor | None = None, **conv_kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self._graph(x, idx)
        return self.conv(x, idx, **conv_kwargs), idx


class ResBlock(_GraphBlock):
    """h' = conv(h) + res_scale · h (DeepGCNs ResGCN). Needs conv.in_channels == conv.out_channels."""

    def __init__(
        self, conv: nn.Module, graph: nn.Module | None = None, *, res_scale: float = 1.0
    ) -> None:
        super().__init__(conv, graph)
        if conv.in_channels != conv.out_channels:
            raise ValueError(
                f"ResBlock: conv must keep the channel count for the residual add; "
                f"got {conv.in_channels} → {conv.out_channels}"
            )
        self.res_scale = float(res_scale)

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def forward(
        self, x: torch.Tensor, idx: torch.Tensor | None = None, **conv_kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self._graph(x, idx)
        out = self.conv(x, idx, **conv_kwargs)  # (B, N, C)
        return (out + x if self.res_scale == 1.0 else out + x * self.res_scale), idx

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, res_scale={self.res_scale}"


class DenseBlock(_GraphBlock):
    """h' = cat(h, conv(h)) (DeepGCNs DenseGCN): channels in → in + conv.out_channels (growth)."""

    @property
    def out_channels(self) -> int:
        return self.conv.in_channels + self.conv.out_channels

    def forward(
        self, x: torch.Tensor, idx: torch.Tensor | None = None, **conv_kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self._graph(x, idx)
        return torch.cat([x, self.conv(x, idx, **conv_kwargs)], dim=-1), idx  # (B, N, C + growth)


class ResPlusBlock(_GraphBlock):
    """Pre-activation residual "res+" (DeeperGCN): h' = h + conv(dropout(act(norm(h)))).

    The conv should be built without its own output norm/act (e.g. ``norm=None, act=None``) as in
    DeeperGCN; the block owns ``norm`` (over ``conv.in_channels``), ``act`` and ``dropout``.
    The dynamic graph is built from the block input h. Needs in == out channels.
    """

    def __init__(
        self,
        conv: nn.Module,
        graph: nn.Module | None = None,
        *,
        norm: str | None = "batch",
        act: str | None = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(conv, graph)
        if conv.in_channels != conv.out_channels:
            raise ValueError(
                f"ResPlusBlock: conv must keep the channel count for the residual add; "
                f"got {conv.in_channels} → {conv.out_channels}"
            )
        self.norm = create_norm(norm, conv.in_channels)
        self.act = create_act(act)
        self.dropout = nn.Dropout(dropout)

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def forward(
        self, x: torch.Tensor, idx: torch.Tensor | None = None, **conv_kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self._graph(x, idx)
        h = self.norm(x) if self.norm is not None else x
        h = self.dropout(self.act(h))
        return x + self.conv(h, idx, **conv_kwargs), idx


BLOCK_REGISTRY: dict[str, type[_GraphBlock]] = {
    "plain": PlainBlock,
    "res": ResBlock,
    "dense": DenseBlock,
    "res+": ResPlusBlock,
}


def create_block(
    name: str, conv: nn.Module, graph: nn.Module | None = None, **kwargs
) -> _GraphBlock:
    """Wrap a built ``conv`` (and optional ``graph`` module) in block `name` (see `BLOCK_REGISTRY`).

    Extra keywords go to the block (``res_scale`` for "res"; ``norm``, ``act``, ``dropout`` for
    "res+"). Unknown names raise ValueError listing the valid ones.
    """
    try:
        cls = BLOCK_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown block {name!r}; valid names: {sorted(BLOCK_REGISTRY)}") from None
    return cls(conv, graph, **kwargs)
