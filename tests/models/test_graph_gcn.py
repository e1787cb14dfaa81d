"""conv="gcn" (PyG's GCNConv) in the graph model, and the `gcn5_ogb` preset: OGB's molecule GCN
baseline (AtomEncoder → 5 × [GCNConv → BatchNorm → ReLU → dropout] → mean pool → Linear), equal to
the same network written out with PyG / OGB modules on the same weights."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("ogb")

from torch_geometric.nn import GCNConv, global_mean_pool  # noqa: E402

from pointseg.models.graph import GraphDeepGCN  # noqa: E402
from pointseg.models.registry import get_graph_config  # noqa: E402
from pointseg.nn.sparse_conv import create_sparse_conv  # noqa: E402


def _molecules(n_graphs=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xs, eis, batch, off = [], [], [], 0
    for g in range(n_graphs):
        n = 5 + g
        xs.append(torch.randint(0, 2, (n, 9), generator=gen))
        src = torch.arange(n - 1)
        ei = torch.stack([torch.cat([src, src + 1]), torch.cat([src + 1, src])]) + off
        eis.append(ei)
        batch.append(torch.full((n,), g))
        off += n
    return torch.cat(xs), torch.cat(eis, 1), torch.cat(batch)


def test_sparse_gcn_conv_is_pyg_gcnconv():
    conv = create_sparse_conv("gcn", 6, 5, norm="batch", act="relu")
    ref = GCNConv(6, 5)
    ref.load_state_dict(conv.conv.state_dict())
    x = torch.randn(7, 6)
    ei = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]])
    conv.train()
    want = torch.relu(torch.nn.functional.batch_norm(ref(x, ei), None, None, training=True))
    torch.testing.assert_close(conv(x, ei), want, rtol=1e-5, atol=1e-6)


def test_gcn5_ogb_equals_the_written_out_network():
    from ogb.graphproppred.mol_encoder import AtomEncoder

    cfg = get_graph_config("gcn5_ogb", num_classes=2)
    assert (cfg.conv, cfg.block, cfg.channels, cfg.num_layers, cfg.dropout) == (
        "gcn", "plain", 300, 5, 0.5
    )  # fmt: skip
    assert (cfg.node_encoder, cfg.edge_encoder, cfg.pooling) == ("atom", "none", "mean")
    torch.manual_seed(0)
    model = GraphDeepGCN(cfg.replace(channels=16)).eval()
    enc = AtomEncoder(16)
    enc.load_state_dict(model.encoder.state_dict())
    convs, bns = [], []
    for layer in model.layers:  # plain block → ConvNormAct(SparseGCNConv, BN, ReLU, dropout)
        c = GCNConv(16, 16)
        c.load_state_dict(layer.conv.conv.conv.state_dict())
        convs.append(c)
        bns.append(layer.conv.norm)
    x, ei, batch = _molecules()
    h = enc(x)
    for c, bn in zip(convs, bns, strict=True):
        h = torch.relu(bn(c(h, ei)))  # eval: dropout is the identity
    want = model.head(global_mean_pool(h, batch))
    torch.testing.assert_close(model(x, ei, None, batch), want, rtol=1e-5, atol=1e-5)
    params = sum(p.numel() for p in model.parameters())
    assert params == sum(p.numel() for m in (enc, *convs, *bns, model.head) for p in m.parameters())
