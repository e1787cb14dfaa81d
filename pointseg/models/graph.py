"""DeepGCN on sparse general graphs: `GraphModelConfig` (stored in checkpoints) and `GraphDeepGCN`.

The same block vocabulary as the point-cloud backbone (`pointseg.nn.blocks`: plain, res, dense,
res+), around the sparse convolutions of `pointseg.nn.sparse_conv` (gen, edge, mr, sage, gin):

    x (N, F) ─encoder─► h (N, C) ─layer 0 (conv)─► blocks 1..L−1 ─[res+: norm → act → dropout]─► head
                                                                       node tasks: Linear → (N, classes)
                                                   graph tasks: pool over each graph → Linear → (G, classes)

- res+ (DeeperGCN): layer 0 is a bare conv, block i computes h + conv(dropout(act(norm(h)))), and a
  final norm → act → dropout precedes the head (Li et al., 2020, Fig. 2 and the reference code).
- res / plain / dense (DeepGCNs): every layer is conv → norm → act → dropout (`ConvNormAct`),
  with h + · (res) or cat(h, ·) (dense, growth = channels) around it.
- rev (RevGNN, Li et al., ICML 2021): all L layers are grouped reversible blocks of
  `pointseg.nn.reversible` (`RevGCN` of `GroupRevBlock`s): the C channels split into ``groups``
  groups, each with its own F_i = conv(mask ⊙ act(norm(h))) on C/G channels (res+ pre-activation
  order, `RevGraphFn`), then the final norm → act → dropout of res+ and the head. The dropout mask
  inside the blocks is drawn once per forward and shared by every F_i of every layer; BatchNorm
  statistics are updated once per step; activation memory does not grow with depth.
  ``weight_tied`` shares one block's weights across all L layers. Edge features reach every F_i
  through the static graph ``(edge_index, edge_attr)``: each GENConv projects the raw edge features
  itself (``lin_edge``: edge_channels → C/G; "bond": one BondEncoder(C/G) per F_i), because a
  tensor computed outside the reversible stack would get no gradient through it.
- Encoders: "linear" (node features), "atom" / "bond" (OGB's AtomEncoder / BondEncoder, one bond
  encoder per layer as in DeeperGCN's molecule models), "linear" edge features (each GENConv's
  ``lin_edge``), or none. Node encoder "none": the first conv reads the raw node features.
- Head "conv" (plain blocks, node tasks): the last layer is a bare conv to the classes and there is
  no linear head. With node_encoder "none" this is the classic GCN / GAT layout: Kipf & Welling's
  2-layer GCN is ``dropout → GCNConv(F, 16) → ReLU → dropout → GCNConv(16, classes)``
  (the `gcn2_planetoid` preset).
- Graph pooling: "mean", "sum", "max" or "attention" (PyG's `AttentionalAggregation` with a
  Linear gate).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from pointseg.errors import ConfigError
from pointseg.nn.blocks import _GraphBlock

GRAPH_LEVELS = ("node", "graph")
GRAPH_CONVS = ("gen", "edge", "mr", "sage", "gin", "gcn")
GRAPH_BLOCKS = ("res+", "res", "dense", "plain", "rev")
NODE_ENCODERS = ("linear", "atom", "none")
GRAPH_HEADS = ("linear", "conv")
EDGE_ENCODERS = ("none", "linear", "bond")
GRAPH_POOLINGS = ("mean", "sum", "max", "attention")


@dataclass
class GraphModelConfig:
    """Architecture of a DeepGCN on sparse graphs (DeeperGCN defaults: res+ GENConv, softmax).

    Attributes:
        kind: always "graph" (tells checkpoints apart from point-cloud `ModelConfig`s).
        task: "node" (logits per node) or "graph" (logits per graph, after pooling).
        in_channels: node feature width (ignored by the "atom" encoder).
        num_classes: outputs (classes, or labels for multi-label / multi-task problems).
        channels, num_layers: width and number of graph convolutions.
        conv, block: see `GRAPH_CONVS`, `GRAPH_BLOCKS`.
        aggr, t, learn_t, p, learn_p, msg_norm, learn_msg_scale, mlp_layers: GENConv settings.
        norm, act: of the blocks ("batch" | "layer" | "none"); dropout: in every block;
            input_dropout: on the node features, before the encoder (citation graphs).
        node_encoder, edge_encoder, edge_channels: input encoders (edge_channels = raw edge
            feature width for the "linear" edge encoder; node_encoder "none": the first conv
            reads the raw features).
        head: "linear" (a Linear after the last block) or "conv" (the last layer is a bare conv
            to num_classes: GCN / GAT; plain blocks and node tasks only).
        pooling: graph tasks only.
        groups, weight_tied: block "rev" only: reversible groups (G >= 2, channels divisible by
            G) and one block's weights shared by all layers.
    """

    kind: str = "graph"
    task: str = "node"
    in_channels: int = 1433
    num_classes: int = 7
    channels: int = 64
    num_layers: int = 7
    conv: str = "gen"
    block: str = "res+"
    aggr: str = "softmax"
    t: float = 1.0
    learn_t: bool = True
    p: float = 1.0
    learn_p: bool = False
    msg_norm: bool = False
    learn_msg_scale: bool = False
    mlp_layers: int = 1
    norm: str = "batch"
    act: str = "relu"
    dropout: float = 0.5
    input_dropout: float = 0.0
    node_encoder: str = "linear"
    edge_encoder: str = "none"
    edge_channels: int = 0
    pooling: str = "mean"
    head: str = "linear"
    groups: int = 2
    weight_tied: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        choices = {
            "kind": ("graph",),
            "task": GRAPH_LEVELS,
            "conv": GRAPH_CONVS,
            "block": GRAPH_BLOCKS,
            "node_encoder": NODE_ENCODERS,
            "edge_encoder": EDGE_ENCODERS,
            "pooling": GRAPH_POOLINGS,
            "head": GRAPH_HEADS,
            "norm": ("batch", "layer", "none"),
        }
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise ConfigError(
                    f"graph model: {key}={getattr(self, key)!r} is not one of {list(valid)}"
                )
        for key in ("in_channels", "num_classes", "channels", "num_layers", "mlp_layers"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"graph model: {key} must be >= 1; got {getattr(self, key)}")
        for key in ("dropout", "input_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"graph model: {key} must be in [0, 1); got {getattr(self, key)}")
        if self.edge_encoder == "linear" and self.edge_channels < 1:
            raise ConfigError("graph model: edge_encoder='linear' needs edge_channels >= 1")
        if self.block == "rev":
            if int(self.groups) < 2 or self.channels % int(self.groups):
                raise ConfigError(
                    f"graph model: block='rev' needs groups >= 2 dividing channels; got "
                    f"groups={self.groups}, channels={self.channels}"
                )
        elif self.weight_tied:
            raise ConfigError(
                f"graph model: weight_tied=true needs block='rev'; got block={self.block!r}"
            )
        if self.head == "conv" and (self.block != "plain" or self.task != "node"):
            raise ConfigError(
                f"graph model: head='conv' needs block='plain' and task='node'; got "
                f"block={self.block!r}, task={self.task!r} (set model.head=linear, or start "
                f"from a preset with a linear head, e.g. --model resgen_planetoid)"
            )
        if self.node_encoder == "none" and self.block == "rev":
            raise ConfigError("graph model: block='rev' needs a node encoder (its groups split C)")
        if self.edge_encoder != "none" and self.conv != "gen":
            raise ConfigError(
                f"graph model: edge features are used by conv='gen' only; got conv={self.conv!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GraphModelConfig:
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - valid)
        if unknown:
            raise ConfigError(
                f"unknown graph model config keys {unknown}; valid keys: {sorted(valid)}"
            )
        return cls(**d)

    def replace(self, **overrides: Any) -> GraphModelConfig:
        return self.from_dict({**self.to_dict(), **overrides})


class ConvNormAct(nn.Module):
    """conv → norm → act → dropout, as one conv for the res / plain / dense blocks."""

    def __init__(self, conv: nn.Module, norm: str, act: str, dropout: float) -> None:
        super().__init__()
        from pointseg.nn.mlp import create_act, create_norm

        self.conv = conv
        self.norm = create_norm(norm, conv.out_channels)
        self.act = create_act(act)
        self.dropout = nn.Dropout(dropout)

    @property
    def in_channels(self) -> int:
        return self.conv.in_channels

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def forward(self, x: Tensor, edge_index: Tensor, **kw: Any) -> Tensor:
        h = self.conv(x, edge_index, **kw)  # (N, C)
        if self.norm is not None:
            h = self.norm(h)
        return self.dropout(self.act(h))


class GraphDeepGCN(nn.Module):
    """``model(x, edge_index, edge_attr=None, batch=None) → logits`` (see the module docstring).

    Shapes: ``x (N, in_channels)`` float, dense or sparse COO (int64 (N, 9) atom features with the "atom" encoder),
    ``edge_index (2, E)``, ``edge_attr (E, edge_channels)`` (int64 (E, 3) for "bond"),
    ``batch (N,)`` graph id of every node (graph tasks) → ``(N, classes)`` or ``(G, classes)``.
    """

    def __init__(self, config: GraphModelConfig) -> None:
        super().__init__()
        from pointseg.nn.blocks import create_block
        from pointseg.nn.sparse_conv import create_sparse_conv

        config.validate()
        self.config = cfg = config
        c = cfg.channels
        self.input_dropout = nn.Dropout(cfg.input_dropout)
        self.encoder: nn.Module | None = None
        if cfg.node_encoder == "atom":
            self.encoder = _ogb_encoder("AtomEncoder", c)
        elif cfg.node_encoder == "linear":
            self.encoder = nn.Linear(cfg.in_channels, c)
        self.edge_encoders = None
        if cfg.edge_encoder == "bond":
            self.edge_encoders = nn.ModuleList(
                _ogb_encoder("BondEncoder", c) for _ in range(cfg.num_layers)
            )
        res_plus = cfg.block == "res+"

        def conv(cin: int, cout: int = c) -> nn.Module:
            if cfg.conv == "gen":
                return create_sparse_conv(
                    "gen",
                    cin,
                    cout,
                    aggr=cfg.aggr,
                    t=cfg.t,
                    learn_t=cfg.learn_t,
                    p=cfg.p,
                    learn_p=cfg.learn_p,
                    msg_norm=cfg.msg_norm,
                    learn_msg_scale=cfg.learn_msg_scale,
                    norm=None if cfg.norm == "none" else cfg.norm,
                    num_layers=cfg.mlp_layers,
                    edge_dim=cfg.edge_channels if cfg.edge_encoder == "linear" else None,
                )
            return create_sparse_conv(cfg.conv, cin, cout, norm=None, act=None)

        if cfg.block == "rev":
            self.edge_encoders = None  # per F_i (see _RevConv)
            self.layers = _rev_stack(cfg, conv)
            self._final(cfg, c)
            self._readout(cfg, c)
            return

        layers: list[nn.Module] = []
        width = c if self.encoder is not None else cfg.in_channels
        for i in range(cfg.num_layers):
            if res_plus:
                layers.append(
                    conv(width)
                    if i == 0
                    else create_block(
                        "res+", conv(c), norm=cfg.norm, act=cfg.act, dropout=cfg.dropout
                    )
                )
                continue
            if cfg.head == "conv" and i == cfg.num_layers - 1:  # bare conv to the classes
                layers.append(create_block("plain", conv(width, cfg.num_classes)))
                width = cfg.num_classes
                continue
            post = ConvNormAct(conv(width), cfg.norm, cfg.act, cfg.dropout)
            name = "plain" if i == 0 and cfg.block == "res" else cfg.block
            block = create_block(name, post)
            layers.append(block)
            width = block.out_channels
        self.layers = nn.ModuleList(layers)
        if res_plus:
            self._final(cfg, c)
        self._readout(cfg, width)

    def _readout(self, cfg: GraphModelConfig, width: int) -> None:
        """Feature width, optional attention pooling (graph tasks) and the linear head."""
        self.feature_channels = width
        self.pool = None
        if cfg.task == "graph" and cfg.pooling == "attention":
            from torch_geometric.nn.aggr import AttentionalAggregation

            self.pool = AttentionalAggregation(gate_nn=nn.Linear(width, 1))
        self.head = nn.Identity() if cfg.head == "conv" else nn.Linear(width, cfg.num_classes)

    def first_layer_parameters(self) -> list[nn.Parameter]:
        """The parameters of the layer that reads the node features (the encoder, or the first
        conv without one): what GCN's recipe decays (`TrainConfig.weight_decay_scope="first"`)."""
        first = self.encoder if self.encoder is not None else self.layers[0]
        return list(first.parameters())

    def _final(self, cfg: GraphModelConfig, c: int) -> None:
        from pointseg.nn.mlp import create_act, create_norm

        self.final_norm = create_norm(cfg.norm, c)
        self.final_act = create_act(cfg.act)
        self.final_dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor | None = None,
        batch: Tensor | None = None,
    ) -> Tensor:
        cfg = self.config
        h = self._encode(x)  # (N, C)
        if cfg.block == "rev":
            # The static graph of every F_i; raw edge features, projected inside each F_i.
            graph = edge_index if cfg.edge_encoder == "none" else (edge_index, edge_attr)
            return self._finish(self.layers(h, graph), batch)
        for i, layer in enumerate(self.layers):
            kw: dict[str, Any] = {}
            if self.edge_encoders is not None:
                kw["edge_attr"] = self.edge_encoders[i](edge_attr)  # (E, C)
            elif cfg.edge_encoder == "linear":
                kw["edge_attr"] = edge_attr
            if isinstance(layer, _GraphBlock):
                h, _ = layer(h, edge_index, **kw)  # a block returns (out, graph used)
            else:
                h = layer(h, edge_index, **kw)  # the bare first conv of res+
        return self._finish(h, batch)

    def _finish(self, h: Tensor, batch: Tensor | None) -> Tensor:
        cfg = self.config
        if cfg.block in ("res+", "rev"):
            if self.final_norm is not None:
                h = self.final_norm(h)
            h = self.final_dropout(self.final_act(h))
        if cfg.task == "graph":
            h = self._pool(h, batch)  # (G, C)
        return self.head(h)

    def _encode(self, x: Tensor) -> Tensor:
        if self.encoder is None:  # the first conv reads the features (dense, after dropout)
            x = x.to_dense() if x.layout == torch.sparse_coo else x
            if not x.is_floating_point():
                raise ValueError(
                    f"graph model: node_encoder='none' needs float node features; got {x.dtype} "
                    f"(categorical features such as OGB's atoms need node_encoder='atom')"
                )
            return self.input_dropout(x)
        if x.layout == torch.sparse_coo:
            # Bag-of-words features (Planetoid: ~1% non-zero): dropout on the stored values and a
            # sparse product, ~100x fewer FLOPs than the dense (N, F) @ (F, C).
            x = x.coalesce()
            vals = self.input_dropout(x.values())
            x = torch.sparse_coo_tensor(x.indices(), vals, x.shape, check_invariants=False)
            return torch.sparse.mm(x, self.encoder.weight.t()) + self.encoder.bias
        return self.encoder(self.input_dropout(x) if x.is_floating_point() else x)

    def _pool(self, h: Tensor, batch: Tensor | None) -> Tensor:
        from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

        if batch is None:
            batch = torch.zeros(h.shape[0], dtype=torch.long, device=h.device)
        if self.pool is not None:
            return self.pool(h, batch)
        fn = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool}
        return fn[self.config.pooling](h, batch)


class _RevConv(nn.Module):
    """The conv of one reversible group function: ``conv(h, graph)`` with the static graph
    ``edge_index`` or ``(edge_index, edge_attr)``; ``edge_encoder`` (OGB BondEncoder) encodes the
    raw edge features inside the group function, so it is trained through the reversible stack."""

    def __init__(self, conv: nn.Module, edge_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = conv
        self.edge_encoder = edge_encoder

    @property
    def in_channels(self) -> int:
        return self.conv.in_channels

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()
        if self.edge_encoder is not None:
            for m in self.edge_encoder.modules():
                if m is not self.edge_encoder and hasattr(m, "reset_parameters"):
                    m.reset_parameters()

    def forward(self, h: Tensor, graph: Tensor | tuple[Tensor, Tensor]) -> Tensor:
        if not isinstance(graph, tuple):
            return self.conv(h, graph)  # (N, C/G)
        edge_index, edge_attr = graph
        if edge_attr is None:
            raise ValueError("graph model: edge_encoder is set but no edge_attr was given")
        if self.edge_encoder is not None:
            edge_attr = self.edge_encoder(edge_attr)  # (E, C/G)
        return self.conv(h, edge_index, edge_attr=edge_attr)


def _rev_stack(cfg: GraphModelConfig, conv) -> nn.Module:
    """RevGNN: `num_layers` grouped reversible blocks of `pointseg.nn.reversible` (static graph)."""
    from pointseg.nn.mlp import create_act, create_norm
    from pointseg.nn.reversible import GroupRevBlock, RevGCN, RevGraphFn

    width = cfg.channels // cfg.groups

    def fn() -> nn.Module:  # norm -> act -> shared-mask dropout -> conv (res+ order), C/G channels
        enc = _ogb_encoder("BondEncoder", width) if cfg.edge_encoder == "bond" else None
        return RevGraphFn(
            _RevConv(conv(width, width), enc), create_norm(cfg.norm, width), create_act(cfg.act)
        )

    def block() -> GroupRevBlock:  # independently initialised group functions
        return GroupRevBlock([fn() for _ in range(cfg.groups)])

    if cfg.weight_tied:
        return RevGCN(block(), num_layers=cfg.num_layers, dropout=cfg.dropout)
    return RevGCN([block() for _ in range(cfg.num_layers)], dropout=cfg.dropout)


def _ogb_encoder(name: str, channels: int) -> nn.Module:
    try:
        from pointseg.runtime.optional import import_ogb

        mol_encoder = import_ogb("ogb.graphproppred.mol_encoder")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            f"the {name} needs the `ogb` package: pip install 'ogb==1.3.6' ({exc})"
        ) from None
    return getattr(mol_encoder, name)(channels)


def count_parameters(cfg: GraphModelConfig) -> int:
    """Exact parameter count of ``GraphDeepGCN(cfg)``, without building 1000 layers: from layer 2
    on, every layer adds the same parameters (all blocks but "dense", whose width grows), so the
    count is linear in depth; dense models and shallow ones are built (on the meta device)."""

    def build(c: GraphModelConfig) -> int:
        with torch.device("meta"):
            return sum(p.numel() for p in GraphDeepGCN(c).parameters())

    depth = cfg.num_layers
    if cfg.block == "dense" or depth <= 3 or cfg.weight_tied:
        return build(cfg)
    p2, p3 = build(cfg.replace(num_layers=2)), build(cfg.replace(num_layers=3))
    return p2 + (depth - 2) * (p3 - p2)
