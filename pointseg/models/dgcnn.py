"""DGCNN for semantic segmentation (Wang et al., "Dynamic Graph CNN for Learning on Point Clouds",
TOG 2019), built from this project's layers; the `dgcnn_s3dis` preset is the published S3DIS model
of the dgcnn.pytorch project (`DGCNN_semseg_s3dis`, k = 20, emb_dims 1024), whose trained weights
`pointseg convert` maps onto it (`pointseg.convert_dgcnn`).

    x (B, N, 9) ─► kNN of x[..., 6:9] (room-normalised xyz) ─► EdgeMLPConv 9 → 64 → 64 ─► x1
    x1 ─► kNN of x1 ─► EdgeMLPConv 64 → 64 → 64 ─► x2
    x2 ─► kNN of x2 ─► EdgeConv 64 → 64 ─► x3                       (every graph: k, self included)
    [x1, x2, x3] (192) ─► SegmentationHead: fusion 192 → 1024, max over points ─► g
    [g, x1, x2, x3] (1216) ─► 512 ─► 256 ─► dropout 0.5 ─► classes (no bias)

Every layer is Conv → BatchNorm → LeakyReLU(0.2) without bias (``order="conv_norm_act"``), the
EdgeConv input is ``[h_i, h_j − h_i]`` (the original's ``[h_j − h_i, h_i]`` with the weight
columns swapped at conversion). Unlike DeepGCN the graph layers are not residual and not dilated,
the edge functions of the first two layers are two-layer MLPs (`EdgeMLPConv`), and the first graph
is built on configurable input channels (`graph_channels`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from pointseg.errors import ConfigError
from pointseg.graph import knn
from pointseg.models.backbone import check_clouds
from pointseg.models.heads import SegmentationHead
from pointseg.models.registry import register_kind, register_model
from pointseg.nn.edge_conv import EdgeConv
from pointseg.nn.edge_mlp_conv import EdgeMLPConv
from pointseg.nn.mlp import ACTS, NORMS, ORDERS

__all__ = ["DGCNNConfig", "DGCNN", "dgcnn_s3dis"]


@dataclass
class DGCNNConfig:
    """Architecture of a DGCNN segmentation model (stored in checkpoints as ``kind: dgcnn``).

    Attributes:
        in_channels: input channels per point (9: centred x y, z, rgb, room-normalised xyz).
        num_classes: output classes.
        k: neighbours per point (self included) of every graph.
        graph_channels: (start, stop) input channels the first kNN graph is built on.
        edge_channels: per graph layer, the widths of its edge MLP ((64, 64) = two 1×1 convs).
        emb_channels: width of the fused global feature (DGCNN's emb_dims).
        head_channels: hidden widths of the per-point prediction MLP.
        dropout: dropout before the classifier.
        order, norm, act, bias: of every layer ("conv_norm_act", "batch", "leaky_relu" 0.2, False).
        classifier_bias: bias of the last layer (False in DGCNN).
    """

    kind: str = "dgcnn"
    task: str = "segmentation"
    in_channels: int = 9
    num_classes: int = 13
    k: int = 20
    graph_channels: tuple[int, int] = (6, 9)
    edge_channels: tuple[tuple[int, ...], ...] = ((64, 64), (64, 64), (64,))
    emb_channels: int = 1024
    head_channels: tuple[int, ...] = (512, 256)
    dropout: float = 0.5
    order: str = "conv_norm_act"
    norm: str = "batch"
    act: str = "leaky_relu"
    bias: bool = False
    classifier_bias: bool = False

    def __post_init__(self) -> None:
        self.graph_channels = tuple(int(c) for c in self.graph_channels)  # type: ignore[assignment]
        self.edge_channels = tuple(tuple(int(c) for c in w) for w in self.edge_channels)
        self.head_channels = tuple(int(c) for c in self.head_channels)

    # properties read by the engine and `pointseg models` (shared with `ModelConfig`)
    @property
    def num_blocks(self) -> int:
        return len(self.edge_channels)

    @property
    def channels(self) -> int:
        return self.edge_channels[0][-1]

    conv = "edge"
    block = "plain"
    dilation = False

    @property
    def min_points(self) -> int:
        return self.k

    @property
    def feature_channels(self) -> int:
        return sum(w[-1] for w in self.edge_channels)

    @property
    def fusion_channels(self) -> int:
        return self.emb_channels

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["graph_channels"] = list(self.graph_channels)
        d["edge_channels"] = [list(w) for w in self.edge_channels]
        d["head_channels"] = list(self.head_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DGCNNConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(
                f"unknown DGCNN config keys {unknown}; valid keys: {', '.join(sorted(names))}"
            )
        config = cls(**d)
        config.validate()
        return config

    def replace(self, **overrides: Any) -> DGCNNConfig:
        return DGCNNConfig.from_dict({**self.to_dict(), **overrides})

    def validate(self) -> None:
        if self.kind != "dgcnn":
            raise ConfigError(f"DGCNNConfig: kind must be 'dgcnn', got {self.kind!r}")
        if self.task != "segmentation":
            raise ConfigError(f"DGCNNConfig: only task 'segmentation' is built, got {self.task!r}")
        lo, hi = self.graph_channels
        if not 0 <= lo < hi <= self.in_channels:
            raise ConfigError(
                f"DGCNNConfig: graph_channels {self.graph_channels} must be a channel range "
                f"within the {self.in_channels} input channels"
            )
        if not self.edge_channels or any(not w or min(w) < 1 for w in self.edge_channels):
            raise ConfigError(f"DGCNNConfig: bad edge_channels {self.edge_channels}")
        if self.k < 1 or self.num_classes < 1 or self.emb_channels < 1:
            raise ConfigError("DGCNNConfig: k, num_classes and emb_channels must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"DGCNNConfig: dropout must be in [0, 1), got {self.dropout}")
        for name, value, valid in (
            ("order", self.order, ORDERS),
            ("norm", self.norm, NORMS),
            ("act", self.act, ACTS),
        ):
            if value not in valid:
                raise ConfigError(f"DGCNNConfig: {name}={value!r}; expected one of {list(valid)}")


class DGCNN(nn.Module):
    """DGCNN segmentation network from a `DGCNNConfig` (see the module docstring).

    Shapes: ``x (B, N, in_channels)`` channels-last → logits ``(B, N, num_classes)``; N ≥ k.
    Parameters: ``convs`` (the graph layers), ``head`` (``fusion``, ``layers``, ``classifier``).
    """

    def __init__(self, config: DGCNNConfig) -> None:
        super().__init__()
        if not isinstance(config, DGCNNConfig):
            raise TypeError(f"DGCNN expects a DGCNNConfig, got {type(config).__name__}")
        config.validate()
        self.config = c = config
        kw = dict(order=c.order, norm=c.norm, act=c.act, bias=c.bias)
        convs: list[nn.Module] = []
        c_in = c.in_channels
        for widths in c.edge_channels:
            if len(widths) == 1:
                convs.append(EdgeConv(c_in, widths[0], **kw))
            else:
                convs.append(EdgeMLPConv(c_in, widths, **kw))
            c_in = widths[-1]
        self.convs = nn.ModuleList(convs)
        self.head = SegmentationHead(
            c.feature_channels,
            c.num_classes,
            fusion_channels=c.emb_channels,
            head_channels=c.head_channels,
            dropout=c.dropout,
            fusion_bias=c.bias,
            **kw,
        )
        width = c.head_channels[-1] if c.head_channels else c.feature_channels + c.emb_channels
        self.head.classifier = nn.Linear(width, c.num_classes, bias=c.classifier_bias)

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    def check_input(self, x: torch.Tensor) -> None:
        c = self.config
        check_clouds(x, c.in_channels, "DGCNN")
        if x.shape[1] < c.k:
            raise ValueError(
                f"DGCNN: every cloud needs at least k = {c.k} points; got {x.shape[1]}"
            )

    def graph_features(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """What layer i's kNN graph is built on: `graph_channels` of x for the first, else h."""
        if i == 0:
            lo, hi = self.config.graph_channels
            h = h[..., lo:hi]
        return h.detach().contiguous()

    def graph(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Neighbours (B, N, k) of layer i on `graph_features(i, h)`, self included."""
        return knn(self.graph_features(i, h), self.config.k)

    def forward_layer(
        self, i: int, h: torch.Tensor, idx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Graph layer i alone on its input h (B, N, C); returns (output (B, N, C'), idx used)."""
        if not 0 <= i < self.num_layers:
            raise IndexError(f"layer {i} out of range: the model has {self.num_layers} layers")
        if idx is None:
            idx = self.graph(i, h)
        return self.convs[i](h, idx), idx

    def forward_features(
        self,
        x: torch.Tensor,
        graphs: list[torch.Tensor | None] | None = None,
        return_graphs: bool = False,
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], list[torch.Tensor]]:
        """[x1, x2, x3] (each (B, N, 64)); `graphs` fixes any layer's neighbours (B, N, k)."""
        self.check_input(x)
        given = graphs or [None] * self.num_layers
        if len(given) != self.num_layers:
            raise ValueError(f"graphs must have {self.num_layers} entries; got {len(given)}")
        outs, used, h = [], [], x
        for i in range(self.num_layers):
            h, idx = self.forward_layer(i, h, given[i])
            outs.append(h)
            used.append(idx)
        return (outs, used) if return_graphs else outs

    def forward_head(self, outs: list[torch.Tensor]) -> torch.Tensor:
        return self.head(list(outs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def extra_repr(self) -> str:
        c = self.config
        return f"layers={self.num_layers}, k={c.k}, graph_channels={c.graph_channels}"


@register_model
def dgcnn_s3dis() -> DGCNNConfig:
    """DGCNN, S3DIS (dgcnn.pytorch): k=20, graph on channels 6:9, LeakyReLU 0.2, 983,552 params."""
    return DGCNNConfig()


register_kind("dgcnn", DGCNNConfig, DGCNN)
