"""The sparse-graph DeepGCN: every conv x block builds, runs and trains (every parameter gets a
gradient), graph-level pooling, presets, and checkpoints that rebuild identical logits."""

from __future__ import annotations

import pytest
import torch

from pointseg.checkpoint import model_from_checkpoint, save_checkpoint
from pointseg.errors import ConfigError
from pointseg.models.graph import (
    GRAPH_BLOCKS,
    GRAPH_CONVS,
    GRAPH_POOLINGS,
    GraphDeepGCN,
    GraphModelConfig,
)
from pointseg.models.registry import get_graph_config, list_models
from pointseg.runtime import import_ogb


def _graph(n=15, e=40, f=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, f, generator=gen), torch.randint(0, n, (2, e), generator=gen)


@pytest.mark.parametrize("block", GRAPH_BLOCKS)
@pytest.mark.parametrize("conv", GRAPH_CONVS)
def test_every_conv_and_block_trains(conv, block):
    torch.manual_seed(0)
    cfg = GraphModelConfig(
        in_channels=6,
        num_classes=3,
        channels=8,
        num_layers=3,
        conv=conv,
        block=block,
        dropout=0.0,
        learn_t=conv == "gen",
    )
    model = GraphDeepGCN(cfg)
    x, ei = _graph()
    out = model(x, ei)
    assert out.shape == (15, 3) and torch.isfinite(out).all()
    out.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    assert model.feature_channels == (8 * 4 if block == "dense" else 8)  # dense: encoder + 3 layers


@pytest.mark.parametrize("pooling", GRAPH_POOLINGS)
def test_graph_level_pooling_is_per_graph(pooling):
    torch.manual_seed(0)
    model = GraphDeepGCN(
        GraphModelConfig(
            task="graph",
            in_channels=6,
            num_classes=2,
            channels=8,
            num_layers=2,
            pooling=pooling,
            dropout=0.0,
        )
    ).eval()
    x1, e1 = _graph(seed=1)
    x2, e2 = _graph(seed=2)
    both = model(
        torch.cat([x1, x2]),
        torch.cat([e1, e2 + 15], 1),
        batch=torch.arange(2).repeat_interleave(15),
    )
    assert both.shape == (2, 2)
    torch.testing.assert_close(both[0], model(x1, e1)[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(both[1], model(x2, e2)[0], rtol=1e-5, atol=1e-6)


def test_presets_build_and_bad_config_errors():
    for name in list_models(kind="graph"):
        cfg = get_graph_config(name)
        if cfg.node_encoder == "atom":
            try:
                import_ogb()
            except ImportError:
                pytest.skip("ogb is not installed")
        assert cfg.num_layers >= 1
    with pytest.raises(ConfigError, match="conv="):
        GraphModelConfig(conv="nope")
    with pytest.raises(ConfigError, match="edge features"):
        GraphModelConfig(conv="mr", edge_encoder="linear", edge_channels=3)
    with pytest.raises(ConfigError, match="unknown graph model"):
        get_graph_config("nope")


def test_checkpoint_roundtrip_identical_logits(tmp_path):
    torch.manual_seed(0)
    cfg = GraphModelConfig(
        in_channels=6,
        num_classes=3,
        channels=8,
        num_layers=3,
        msg_norm=True,
        learn_msg_scale=True,
        edge_encoder="linear",
        edge_channels=2,
    )
    model = GraphDeepGCN(cfg).eval()
    x, ei = _graph()
    ea = torch.randn(ei.shape[1], 2)
    save_checkpoint(
        tmp_path / "g.pt",
        model_config=cfg,
        model_state=model.state_dict(),
        meta={"dataset": "cora"},
    )
    loaded, ckpt = model_from_checkpoint(tmp_path / "g.pt")
    assert isinstance(loaded, GraphDeepGCN) and ckpt["model_config"]["kind"] == "graph"
    assert torch.equal(loaded(x, ei, ea), model(x, ei, ea))
