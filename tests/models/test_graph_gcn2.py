"""The `gcn2_planetoid` preset is Kipf & Welling's 2-layer GCN, and `weight_decay_scope=first` is
the optimiser of their recipe (and of PyG's examples/gcn.py): the same weights trained the same
steps with the network and optimiser written out by hand end in the same weights."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import GCNConv

from pointseg.engine.config import TrainConfig
from pointseg.engine.trainer import make_optimizer, param_groups
from pointseg.errors import ConfigError
from pointseg.models.graph import GraphDeepGCN
from pointseg.models.registry import get_graph_config


def _graph(n=40, f=30, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, f, generator=gen) < 0.2).float()
    x = x / x.sum(1, keepdim=True).clamp(min=1)  # row-normalised bag of words
    src = torch.randint(0, n, (120,), generator=gen)
    dst = torch.randint(0, n, (120,), generator=gen)
    ei = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    y = torch.randint(0, 4, (n,), generator=gen)
    return x, ei, y


class KipfGCN(torch.nn.Module):
    """PyG's examples/gcn.py network, written out."""

    def __init__(self, f: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.conv1 = GCNConv(f, hidden)
        self.conv2 = GCNConv(hidden, classes)

    def forward(self, x, ei):
        x = torch.nn.functional.dropout(x, p=0.5, training=self.training)
        x = torch.relu(self.conv1(x, ei))
        x = torch.nn.functional.dropout(x, p=0.5, training=self.training)
        return self.conv2(x, ei)


def _pair(f=30, classes=4):
    cfg = get_graph_config("gcn2_planetoid", in_channels=f, num_classes=classes)
    assert (cfg.conv, cfg.block, cfg.channels, cfg.num_layers, cfg.norm) == (
        "gcn", "plain", 16, 2, "none"
    )  # fmt: skip
    assert (cfg.node_encoder, cfg.head, cfg.dropout, cfg.input_dropout) == (
        "none",
        "conv",
        0.5,
        0.5,
    )
    torch.manual_seed(0)
    model = GraphDeepGCN(cfg)
    ref = KipfGCN(f, 16, classes)
    ref.conv1.load_state_dict(model.layers[0].conv.conv.conv.state_dict())
    ref.conv2.load_state_dict(model.layers[1].conv.conv.state_dict())
    return model, ref


def test_gcn2_planetoid_is_kipfs_gcn_in_train_and_eval_mode():
    model, ref = _pair()
    x, ei, _ = _graph()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())
    for training in (True, False):
        model.train(training)
        ref.train(training)
        torch.manual_seed(1)
        got = model(x, ei)
        torch.manual_seed(1)  # the same dropout masks, drawn in the same order
        want = ref(x, ei)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # the Planetoid readers store features as a sparse COO tensor: the same logits
    torch.testing.assert_close(model.eval()(x.to_sparse(), ei), want, rtol=1e-5, atol=1e-6)


def test_first_layer_decay_trains_like_the_reference_optimiser():
    model, ref = _pair()
    x, ei, y = _graph()
    cfg = TrainConfig(dataset="cora", lr=0.01, weight_decay=5e-4, weight_decay_scope="first")
    opt = make_optimizer(cfg, param_groups(cfg, model))
    ref_opt = torch.optim.Adam(
        [dict(params=ref.conv1.parameters(), weight_decay=5e-4),
         dict(params=ref.conv2.parameters(), weight_decay=0.0)], lr=0.01,
    )  # fmt: skip
    for step in range(5):
        for m, o in ((model, opt), (ref, ref_opt)):
            torch.manual_seed(step)
            o.zero_grad()
            torch.nn.functional.cross_entropy(m.train()(x, ei), y).backward()
            o.step()
    torch.testing.assert_close(
        model.layers[0].conv.conv.conv.lin.weight, ref.conv1.lin.weight, rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(
        model.layers[1].conv.conv.lin.weight, ref.conv2.lin.weight, rtol=1e-5, atol=1e-6
    )
    # and decaying everything (scope "all") does not: the second layer's weights differ
    model2, _ = _pair()
    cfg_all = TrainConfig(dataset="cora", lr=0.01, weight_decay=5e-2)
    groups = param_groups(cfg_all, model2)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 5e-2
    first = param_groups(
        TrainConfig(dataset="cora", weight_decay=1.0, weight_decay_scope="first"), model2
    )
    assert [len(g["params"]) for g in first] == [2, 2] and first[1]["weight_decay"] == 0.0


def test_first_layer_scope_errors():
    with pytest.raises(ConfigError, match="weight_decay_scope 'last' is not known"):
        TrainConfig(dataset="cora", weight_decay_scope="last").validate()
    cfg = TrainConfig(dataset="cora", weight_decay_scope="first")
    with pytest.raises(ConfigError, match="does not name its first layer"):
        param_groups(cfg, torch.nn.Linear(3, 2))
    with pytest.raises(ConfigError, match="head='conv' needs block='plain'"):
        get_graph_config("gcn2_planetoid", block="res")
    model = GraphDeepGCN(get_graph_config("gcn2_planetoid", in_channels=9, num_classes=2))
    with pytest.raises(ValueError, match="needs float node features; got torch.int64"):
        model(torch.zeros(3, 9, dtype=torch.long), torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(ConfigError, match="block='rev' needs a node encoder"):
        get_graph_config("revgnn_deep_proteins", node_encoder="none")
