"""Graph-model presets (`GraphModelConfig`s) in the one model registry (`pointseg.models.registry`).

Registered here, where the graph models are defined, not as a side effect of importing a task:
`pointseg models` lists them and `get_config(name)` returns them like the point-cloud presets.
Input widths and class counts are set from the data by the task (`pointseg.tasks.graphs`).
"""

from __future__ import annotations

from pointseg.models.graph import GraphDeepGCN, GraphModelConfig
from pointseg.models.registry import register_graph_model, register_kind

register_kind("graph", GraphModelConfig, GraphDeepGCN)

# Published settings (DESIGN §3; DeeperGCN reference code). Input widths are set from the data.
register_graph_model(
    "resgen112_proteins",
    "DeeperGCN ogbn-proteins: 112 res+ GENConv layers, 64 ch, softmax with learnable β, LayerNorm, "
    "edge features in every conv, 2-layer MLP",
    channels=64,
    num_layers=112,
    norm="layer",
    dropout=0.1,
    in_channels=8,
    num_classes=112,
    aggr="softmax",
    learn_t=True,
    mlp_layers=2,  # the reference code's default (--mlp_layers 2)
    edge_encoder="linear",  # --conv_encode_edge: each GENConv projects the 8 edge features
    edge_channels=8,
)
register_graph_model(
    "resgen28_arxiv",
    "DeeperGCN ogbn-arxiv: 28 res+ GENConv layers, 128 ch, softmax with learnable β, BatchNorm",
    channels=128,
    num_layers=28,
    norm="batch",
    dropout=0.5,
    in_channels=128,
    num_classes=40,
)
register_graph_model(
    "resgen7_mol",
    "DeeperGCN ogbg-molhiv: 7 res+ GENConv layers, 256 ch, atom/bond encoders, mean pooling",
    task="graph",
    channels=256,
    num_layers=7,
    dropout=0.5,  # deep_gcns_torch ogbg_mol: the molhiv command leaves --dropout at 0.5
    node_encoder="atom",
    edge_encoder="bond",
    num_classes=1,
)
register_graph_model(
    "resmrgcn28_ppi",
    "DeepGCNs PPI: ResMRGCN-28, 256 ch, BatchNorm (micro-F1 99.41 published)",
    conv="mr",
    block="res",
    channels=256,
    num_layers=28,
    dropout=0.0,
    in_channels=50,
    num_classes=121,
)
register_graph_model(
    "densemrgcn14_ppi",
    "DeepGCNs PPI: DenseMRGCN-14, growth 256 (micro-F1 99.43 published)",
    conv="mr",
    block="dense",
    channels=256,
    num_layers=14,
    dropout=0.0,
    in_channels=50,
    num_classes=121,
)
# RevGNN (Li et al., ICML 2021) on ogbn-proteins, the published commands (DESIGN §3; train with
# `--lr 0.001`, test with multi-view inference: 10 views of 3 random parts). Every GENConv uses the
# 8 edge features (`--conv_encode_edge`), max aggregation, a 2-layer MLP, LayerNorm, 2 groups.
_REVGNN_PROTEINS = dict(
    block="rev",
    groups=2,
    aggr="max",
    learn_t=False,
    mlp_layers=2,
    norm="layer",
    in_channels=8,
    num_classes=112,
    edge_encoder="linear",
    edge_channels=8,
)
register_graph_model(
    "revgnn_deep_proteins",
    "RevGNN-Deep ogbn-proteins: 1001 reversible GENConv layers, 80 ch, 2 groups, dropout 0.1 "
    "(ROC-AUC 87.74 published)",
    channels=80,
    num_layers=1001,
    dropout=0.1,
    **_REVGNN_PROTEINS,
)
register_graph_model(
    "revgnn_wide_proteins",
    "RevGNN-Wide ogbn-proteins: 448 reversible GENConv layers, 224 ch, 2 groups, dropout 0.2 "
    "(ROC-AUC 88.24 published)",
    channels=224,
    num_layers=448,
    dropout=0.2,
    **_REVGNN_PROTEINS,
)
register_graph_model(
    "revgnn1001_tied",
    "Weight-tied RevGNN, 1001 layers: RevGNN-Deep's settings with one block's weights shared by "
    "every layer (parameters independent of depth)",
    channels=80,
    num_layers=1001,
    dropout=0.1,
    weight_tied=True,
    **_REVGNN_PROTEINS,
)

# Small models that train in minutes (task defaults live in pointseg/recipes.py).
register_graph_model(
    "resgen_planetoid",
    "res+ GENConv (softmax, learnable β, MsgNorm), 3 layers, 64 ch, LayerNorm: DeeperGCN's model "
    "for citation graphs (0.791 on Cora over 10 seeds; the recipe is gcn2_planetoid)",
    channels=64,
    num_layers=3,
    norm="layer",
    dropout=0.6,
    input_dropout=0.6,
    msg_norm=True,
)

register_graph_model(
    "resgcn_planetoid",
    "res+ blocks around PyG's GCNConv (symmetric normalisation, self loops), 3 layers, 64 ch, "
    "LayerNorm, dropout 0.6 (0.794 on Cora over 10 seeds; the recipe is gcn2_planetoid, "
    "docs/graphs.md)",
    conv="gcn",
    channels=64,
    num_layers=3,
    norm="layer",
    dropout=0.6,
    input_dropout=0.6,
)

register_graph_model(
    "resgen_mol",
    "res+ GENConv (softmax, learnable β), 4 layers, 64 ch, atom/bond encoders, mean pooling: "
    "molecule default (DeeperGCN's molhiv model is resgen7_mol)",
    task="graph",
    channels=64,
    num_layers=4,
    dropout=0.2,
    node_encoder="atom",
    edge_encoder="bond",
    num_classes=1,
)

register_graph_model(
    "resmrgcn_ppi_small",
    "ResMRGCN, 7 layers, 64 ch, BatchNorm: PPI default that trains in minutes on 2 cores",
    conv="mr",
    block="res",
    channels=64,
    num_layers=7,
    dropout=0.0,
    in_channels=50,
    num_classes=121,
)

register_graph_model(
    "gcn5_ogb",
    "OGB's GCN baseline for molecules (examples/graphproppred/mol, --gnn gcn): 5 PyG GCNConv layers, "
    "300 ch, BatchNorm, dropout 0.5, atom encoder, no virtual node, no edge features, mean pooling",
    task="graph",
    conv="gcn",
    block="plain",
    channels=300,
    num_layers=5,
    norm="batch",
    dropout=0.5,
    node_encoder="atom",
    num_classes=1,
)

register_graph_model(
    "gcn2_planetoid",
    "Kipf & Welling's 2-layer GCN: dropout 0.5 → GCNConv(F, 16) → ReLU → dropout 0.5 → "
    "GCNConv(16, classes), no encoder, no norm, no linear head (train with weight decay 5e-4 on "
    "the first layer only: weight_decay_scope=first)",
    conv="gcn",
    block="plain",
    channels=16,
    num_layers=2,
    norm="none",
    dropout=0.5,
    input_dropout=0.5,
    node_encoder="none",
    head="conv",
)
