"""Fusion and prediction heads of DeepGCN (Li et al., ICCV'19, Fig. 3; DESIGN §3).

Both heads take the concatenated per-layer features `feats (B, N, F)` of the backbone
(F = 28·64 = 1792 for ResGCN-28) and first fuse them per point, F → fusion_channels (1024),
with a `Lin` layer (Linear + act/norm in the configured order).

- `SegmentationHead`: global max pool of the fusion → g (B, 1024), broadcast to every point and
  concatenated with the point features: [g, f_i] (2816; global part first, as the original
  `torch.cat((fusion, feats), dim=1)`) → 512 → 256 → dropout → classes.
- `ClassificationHead`: global max ‖ mean pool of the fusion (2048) → 512 → dropout → 256 →
  dropout → classes (original `examples/modelnet_cls`).

The split trick: the first prediction layer is W·[g, f_i] + b = W_g g + (W_f f_i + b), so the
global part is one (B, 512) vector per cloud instead of a (B, N, 1024) repeated tensor and a
(B, N, 2816) concatenation. The parameters stay those of a plain `nn.Linear(2816, 512)`
(state-dict compatible with the original 1×1 conv), only the forward is split. It is exact up to
floating-point summation order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from pointseg.nn.mlp import Lin, apply_norm_act

__all__ = ["SegmentationHead", "ClassificationHead", "split_linear"]


def split_linear(lin: nn.Linear, g: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """`lin(cat([g broadcast over points, f], -1))` without building the concatenation.

    g: (B, G) global features, f: (B, N, F) point features, lin: Linear(G + F, out).
    Returns (B, N, out) = W_f f + (W_g g + b) broadcast over N.
    """
    width = g.shape[-1]
    w_g, w_f = lin.weight[:, :width], lin.weight[:, width:]  # (out, G), (out, F)
    point = F.linear(f, w_f)  # (B, N, out)
    glob = F.linear(g, w_g, lin.bias)  # (B, out)
    return point + glob.unsqueeze(1)


class SegmentationHead(nn.Module):
    """Fusion + global max pool + per-point prediction MLP.

    Shapes: feats (B, N, feature_channels) → logits (B, N, num_classes).
    Parameters: `fusion` (Lin F → fusion), `layers` (Lin 2816 → 512, Lin 512 → 256),
    `classifier` (nn.Linear 256 → classes, no act, no norm).
    """

    def __init__(
        self,
        feature_channels: int,
        num_classes: int,
        *,
        fusion_channels: int = 1024,
        head_channels: Sequence[int] = (512, 256),
        dropout: float = 0.3,
        order: str = "conv_act_norm",
        norm: str | None = "batch",
        act: str | None = "relu",
        bias: bool = True,
        fusion_bias: bool = True,
    ) -> None:
        super().__init__()
        self.feature_channels = feature_channels
        self.fusion_channels = fusion_channels
        self.order = order
        kw = dict(order=order, norm=norm, act=act)
        self.fusion = Lin(feature_channels, fusion_channels, bias=fusion_bias, **kw)
        widths = [feature_channels + fusion_channels, *head_channels]
        self.layers = nn.ModuleList(
            Lin(c_in, c_out, bias=bias, **kw)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def global_feature(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, N, F) → (B, fusion_channels): fusion layer, then max over the N points."""
        return self.fusion(feats).amax(dim=1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        g = self.global_feature(feats)  # (B, 1024)
        if not self.layers:
            return split_linear(self.classifier, g, self.dropout(feats))
        first = self.layers[0]
        h = split_linear(first.lin, g, feats)  # (B, N, 512)
        h = apply_norm_act(h, first.norm, first.act, self.order)
        for layer in self.layers[1:]:
            h = layer(h)  # (B, N, 256)
        return self.classifier(self.dropout(h))  # (B, N, classes)


class ClassificationHead(nn.Module):
    """Fusion + global pooling (max, mean or max ‖ mean) + MLP with dropout after hidden layers.

    Shapes: feats (B, N, feature_channels) → logits (B, num_classes).
    """

    def __init__(
        self,
        feature_channels: int,
        num_classes: int,
        *,
        fusion_channels: int = 1024,
        head_channels: Sequence[int] = (512, 256),
        dropout: float = 0.5,
        pooling: str = "max+mean",
        order: str = "conv_act_norm",
        norm: str | None = "batch",
        act: str | None = "relu",
        bias: bool = True,
        fusion_bias: bool = True,
    ) -> None:
        super().__init__()
        if pooling not in ("max+mean", "max", "mean"):
            raise ValueError(f"pooling must be 'max+mean', 'max' or 'mean', got {pooling!r}")
        self.pooling = pooling
        kw = dict(order=order, norm=norm, act=act)
        self.fusion = Lin(feature_channels, fusion_channels, bias=fusion_bias, **kw)
        pooled = fusion_channels * (2 if pooling == "max+mean" else 1)
        widths = [pooled, *head_channels]
        self.layers = nn.ModuleList(
            Lin(c_in, c_out, bias=bias, **kw)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def pool(self, fused: torch.Tensor) -> torch.Tensor:
        """(B, N, C) → (B, C) or (B, 2C) for max ‖ mean."""
        if self.pooling == "max":
            return fused.amax(dim=1)
        if self.pooling == "mean":
            return fused.mean(dim=1)
        return torch.cat([fused.amax(dim=1), fused.mean(dim=1)], dim=-1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        # Hidden layers run on (B, 1, C) so every channels-last norm (incl. instance) applies.
        h = self.pool(self.fusion(feats)).unsqueeze(1)  # (B, 1, 2048)
        for layer in self.layers:
            h = self.dropout(layer(h))
        return self.classifier(h).squeeze(1)  # (B, classes)
