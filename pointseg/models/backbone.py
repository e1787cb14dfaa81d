"""`DeepGCN`: head graph conv + deep dynamic graph blocks + fusion/prediction head.

Paper: Li et al., "DeepGCNs: Can GCNs Go as Deep as CNNs?", ICCV 2019 (TPAMI extension);
layout of the original `deep_gcns_torch` S3DIS / ModelNet models (DESIGN §3):

    x (B, N, C_in) ─► head conv on the kNN graph of x[..., :3] (k, d = 1) ─► h_0 (B, N, 64)
    h_i = block_i(h_{i−1}) for i = 1..L−1, each on a dilated kNN graph (d = i) of h_{i−1}
    feats = [h_0, …, h_{L−1}] concatenated (B, N, 64·L) ─► SegmentationHead / ClassificationHead

ResGCN: h_i = conv(h_{i−1}) + h_{i−1}; PlainGCN: h_i = conv(h_{i−1}) (d = 1, no stochastic
dilation); DenseGCN: h_i = [h_{i−1}, conv(h_{i−1})], block i takes 64·i channels and adds 64
(the fusion input is then the 64·L channels of the last block, i.e. the same concatenation of
every layer's new features; with `dense_fusion="all"` every block's full output is concatenated,
64·L(L+1)/2 channels, as the original ModelNet code does); Res+: pre-activation blocks of DeeperGCN.

Very deep variants (docs/reversible.md): RevGCN (``block="rev"``) runs the L − 1 blocks as one
`pointseg.nn.RevGCN` of grouped reversible blocks, each group with its own conv on the dilated kNN
graph of its own input; DEQ-GCN (``block="deq"``) replaces them by one equilibrium layer whose kNN
graph is built once from h_0. Both fuse [h_0, h_{L−1}] (keeping every layer's output would bring
back the O(L) memory). ``checkpoint=True`` recomputes each ordinary block in backward.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from pointseg.graph import DilatedKnnGraph, dilated_knn
from pointseg.graph.knn import knn_mode
from pointseg.models.config import ModelConfig
from pointseg.models.heads import ClassificationHead, SegmentationHead
from pointseg.nn import create_block, create_conv
from pointseg.nn.deq import DEQ, DEQCell
from pointseg.nn.reversible import GroupRevBlock, RevGCN, RevGraphFn, frozen_buffers

__all__ = ["DeepGCN"]


def check_clouds(x: torch.Tensor, in_channels: int, owner: str) -> None:
    """Raise a ValueError naming ``owner`` unless x is a float (B, N, in_channels) tensor."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != in_channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"{owner}: x must be a (B, N, {in_channels}) channels-last tensor; got {shape}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{owner}: x must be a float tensor; got dtype {x.dtype}")


class DeepGCN(nn.Module):
    """DeepGCN point-cloud model built from a `ModelConfig` (its only argument).

    Shapes: ``x (B, N, in_channels)`` channels-last → logits ``(B, N, num_classes)``
    (segmentation) or ``(B, num_classes)`` (classification). Needs N ≥ k · (deepest dilation).

    Parameters: ``stem`` (head graph conv), ``blocks`` (L − 1 graph blocks, each with ``conv``
    and a dynamic ``graph``), ``head`` (``fusion`` + prediction ``layers`` + ``classifier``).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"DeepGCN expects a ModelConfig, got {type(config).__name__}")
        config.validate()
        self.config = c = config
        conv_kw = dict(order=c.order, norm=c.norm, act=c.act)
        stem_bias = c.bias if c.stem_bias is None else c.stem_bias
        self.stem = create_conv(c.conv, c.in_channels, c.channels, bias=stem_bias, **conv_kw)
        # The head graph is the plain kNN of xyz (d = 1: stochastic dilation would be a no-op).
        self.stem_graph = DilatedKnnGraph(c.k, 1)

        self.rev: RevGCN | None = None
        self.deq: DEQ | None = None
        blocks = []
        if c.block == "rev":
            self.rev = self._build_rev(conv_kw)
        elif c.block == "deq":
            conv = create_conv(c.conv, c.channels, c.channels, bias=True, order=c.order,
                               norm=None, act=None)  # fmt: skip
            cell = DEQCell(conv, act=c.act)
            self.deq = DEQ(cell, solver=c.deq_solver, tol=c.deq_tol, max_iter=c.deq_max_iter)
        for i in range(1, c.num_blocks if c.block not in ("rev", "deq") else 1):
            d = c.block_dilation(i)
            graph = None
            if c.dynamic:
                stochastic = c.stochastic and c.block != "plain" and d > 1
                graph = DilatedKnnGraph(c.k, d, stochastic, c.epsilon)
            if c.block == "dense":
                conv = create_conv(c.conv, c.channels * i, c.channels, bias=c.bias, **conv_kw)
                blocks.append(create_block("dense", conv, graph))
            elif c.block == "res+":
                # DeeperGCN: the block owns norm → act before the conv; the conv is bare.
                conv = create_conv(c.conv, c.channels, c.channels, bias=c.bias, order=c.order,
                                   norm=None, act=None)  # fmt: skip
                blocks.append(create_block("res+", conv, graph, norm=c.norm, act=c.act))
            else:
                conv = create_conv(c.conv, c.channels, c.channels, bias=c.bias, **conv_kw)
                blocks.append(create_block(c.block, conv, graph))
        self.blocks = nn.ModuleList(blocks)

        head_kw = dict(
            fusion_channels=c.fusion_channels,
            head_channels=c.head_channels,
            dropout=c.dropout,
            order=c.order,
            norm=c.norm,
            act=c.act if c.head_act is None else c.head_act,
            bias=c.bias,
            fusion_bias=c.bias if c.fusion_bias is None else c.fusion_bias,
        )
        if c.task == "segmentation":
            self.head = SegmentationHead(c.feature_channels, c.num_classes, **head_kw)
        else:
            self.head = ClassificationHead(
                c.feature_channels, c.num_classes, pooling=c.pooling, **head_kw
            )
        if not next(self.parameters()).is_meta:  # meta-device builds (parameter counts): no data
            self.init_weights()

    def _build_rev(self, conv_kw: dict) -> RevGCN:
        c = self.config
        width = c.channels // c.groups

        def block() -> GroupRevBlock:
            # one conv per group, each built (and so initialised) separately
            return GroupRevBlock(
                [
                    RevGraphFn(create_conv(c.conv, width, width, bias=c.bias, **conv_kw))
                    for _ in range(c.groups)
                ]
            )

        layers = c.num_blocks - 1
        blocks = [block()] * layers if c.weight_tied else [block() for _ in range(layers)]
        dilations = [c.block_dilation(i) for i in range(1, c.num_blocks)] if c.dynamic else None
        return RevGCN(
            blocks,
            k=c.k if c.dynamic else None,
            dilations=dilations,
            stochastic=c.stochastic,
            epsilon=c.epsilon,
            dropout=c.block_dropout,
            keep_graphs=c.keep_graphs,
        )

    # ------------------------------------------------------------------ setup
    def init_weights(self) -> None:
        """Original initialisation: Kaiming-normal Linear weights, zero biases, BN γ = 1, β = 0."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._NormBase) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.deq is not None:
            self.deq.cell.rescale()  # start contractive (see DEQCell)

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def num_layers(self) -> int:
        """Graph layers including the head conv (= config.num_blocks)."""
        return self.config.num_blocks

    # ------------------------------------------------------------------ forward pieces
    def check_input(self, x: torch.Tensor) -> None:
        c = self.config
        check_clouds(x, c.in_channels, "DeepGCN")
        if self.training and c.task == "classification" and c.norm == "batch" and x.shape[0] < 2:
            # The head's BatchNorm sees one pooled vector per cloud: batch statistics need two.
            raise ValueError(
                "DeepGCN: a classification model in training mode needs at least 2 clouds per "
                f"batch (BatchNorm over pooled features); got x of shape {tuple(x.shape)}"
            )
        if x.shape[1] < c.min_points:
            raise ValueError(
                f"DeepGCN: every cloud needs at least k·d = {c.min_points} points (k={c.k}, "
                f"deepest dilation {c.max_dilation()}); got N={x.shape[1]}"
            )

    def forward_layer(
        self, i: int, h: torch.Tensor, idx: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run graph layer i alone: i = 0 is the head conv on input points h = x (graph on
        h[..., :3] unless `idx` is given); i ≥ 1 is block i on its input h (graph on h unless
        `idx` is given). Returns (output, idx used)."""
        if not 0 <= i < self.num_layers:
            raise IndexError(f"layer {i} out of range: the model has {self.num_layers} layers")
        if i == 0:
            if idx is None:
                idx = self.stem_graph(h[..., :3].detach())
            return self.stem(h, idx), idx
        if self.rev is not None or self.deq is not None:
            raise ValueError(
                f"DeepGCN: block={self.config.block} runs its blocks as one stack; "
                "forward_layer works for layer 0 only"
            )
        return self.blocks[i - 1](h, idx)

    def forward_features(
        self,
        x: torch.Tensor,
        graphs: list[torch.Tensor | None] | None = None,
        return_graphs: bool = False,
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-layer outputs [h_0 (head conv), h_1, …, h_{L−1}], each (B, N, C_i).

        `graphs` (optional, length L) fixes the neighbour indices (B, N, k) of any layer (None
        entries are built as usual). With `return_graphs` also returns the indices each layer used.
        """
        self.check_input(x)
        if graphs is not None and len(graphs) != self.num_layers:
            raise ValueError(
                f"graphs must have one entry per layer ({self.num_layers}); got {len(graphs)}"
            )
        given = graphs or [None] * self.num_layers
        h, idx0 = self.forward_layer(0, x, given[0])  # (B, N, C), (B, N, k)
        if self.rev is not None or self.deq is not None:
            if any(g is not None for g in given[1:]):
                raise ValueError(
                    f"DeepGCN: block={self.config.block} builds its own graphs; only graphs[0] "
                    "(the head conv's) can be given"
                )
            return self._forward_deep(x, h, idx0, return_graphs)
        outs, used = [h], [idx0]
        ckpt = self.config.checkpoint and torch.is_grad_enabled()
        for i in range(1, self.num_layers):
            idx = given[i]
            if idx is None and not self.config.dynamic:
                idx = idx0  # static model: every block reuses the xyz graph
            if ckpt:
                # keeps only the block input; the recompute (graph included) must not touch the
                # BatchNorm running statistics a second time
                context = functools.partial(_recompute_context, self.blocks[i - 1])
                h, idx = checkpoint(
                    self.forward_layer, i, h, idx, use_reentrant=False, context_fn=context
                )
            else:
                h, idx = self.forward_layer(i, h, idx)
            outs.append(h)
            used.append(idx)
        return (outs, used) if return_graphs else outs

    def _forward_deep(self, x, h0, idx0, return_graphs: bool):
        """RevGCN / DEQ-GCN: [h_0, h_{L−1}] and, with `return_graphs`, [idx_0, graphs]."""
        c = self.config
        if self.rev is not None:
            graph = None if c.dynamic else idx0
            if return_graphs:
                h, graphs = self.rev(h0, graph, return_graphs=True)  # graphs[layer][group]
            else:
                h, graphs = self.rev(h0, graph), None
        else:
            # the graph is fixed from the input features for the whole solve
            graphs = dilated_knn(h0.detach(), c.k, 1) if c.dynamic else idx0
            h = self.deq(h0, graphs)
        outs = [h0, h]
        return (outs, [idx0, graphs]) if return_graphs else outs

    def fusion_input(self, outs: list[torch.Tensor]) -> torch.Tensor:
        """Concatenated per-layer features (B, N, channels · L) fed to the fusion layer."""
        return torch.cat(self.fusion_parts(outs), dim=-1)

    def fusion_parts(self, outs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The per-layer tensors whose channel concatenation is `fusion_input` (not built)."""
        if self.config.block == "dense" and self.config.dense_fusion == "new":
            return [outs[-1]]
        if self.config.fusion_layers == "last":
            return [outs[-1]]
        if self.config.fuse_ends:
            return [outs[0], outs[-1]]
        return list(outs)

    def forward_head(self, outs: list[torch.Tensor]) -> torch.Tensor:
        """Logits from the per-layer outputs of `forward_features`.

        The head gets the parts, not the concatenation: it never keeps the (B, N, 64·L) tensor
        for backward (−56 MB per ResGCN-28 training step at B = 2, N = 4096)."""
        return self.head(self.fusion_parts(outs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # every kNN of this forward on the config's path (unless a --knn flag forces one)
        with knn_mode(None if self.config.knn == "auto" else self.config.knn, weak=True):
            return self.forward_head(self.forward_features(x))

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"task={c.task}, layers={c.num_blocks}, channels={c.channels}, conv={c.conv}, "
            f"block={c.block}, k={c.k}, order={c.order}"
        )


def _recompute_context(block: nn.Module):
    """torch.utils.checkpoint context_fn: nothing in forward; frozen buffers in the recompute."""
    return contextlib.nullcontext(), frozen_buffers(block)
