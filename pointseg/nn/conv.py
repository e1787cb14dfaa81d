"""Graph-convolution registry: names → classes, `create_conv(name, in, out, **kw)`.

Names follow the original DeepGCNs code (``--conv edge|mr|sage|gin``).
"""

from __future__ import annotations

from torch import nn

from pointseg.nn.edge_conv import EdgeConv
from pointseg.nn.gin_conv import GINConv
from pointseg.nn.mr_conv import MRConv
from pointseg.nn.sage_conv import SAGEConv

CONV_REGISTRY: dict[str, type[nn.Module]] = {
    "edge": EdgeConv,
    "mr": MRConv,
    "sage": SAGEConv,
    "gin": GINConv,
}


def create_conv(name: str, in_channels: int, out_channels: int, **kwargs) -> nn.Module:
    """Build the dense-graph convolution `name` (see `CONV_REGISTRY`).

    Every conv takes ``(in_channels, out_channels, *, order, norm, act, bias, …)`` and maps
    ``x (B, N, in), idx (B, N, k) → (B, N, out)``. Unknown names raise ValueError listing the valid ones.
    """
    try:
        cls = CONV_REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown graph convolution {name!r}; valid names: {sorted(CONV_REGISTRY)}"
        ) from None
    return cls(in_channels, out_channels, **kwargs)
