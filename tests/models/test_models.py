"""DeepGCN models: presets, config, parameter counts, forward/backward, split-trick head."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from pointseg.cli import main as cli_main
from pointseg.errors import ConfigError
from pointseg.graph import dilated_knn
from pointseg.models import (
    DeepGCN,
    ModelConfig,
    SegmentationHead,
    create_model,
    get_config,
    list_models,
)
from pointseg.models.heads import ClassificationHead
from pointseg.nn import DenseBlock, PlainBlock, ResBlock, ResPlusBlock

TINY = list_models("*tiny*")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors: thread start-up and contention cost far more than the work (30x on a busy box).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# DeepGCN presets (`dgcnn_s3dis` builds a `DGCNN`: tests/models/test_dgcnn.py)
ALL = [n for n in list_models() if isinstance(get_config(n), ModelConfig)]


def expected_params(c: ModelConfig) -> int:
    """Parameter count from the architecture description (DESIGN §3), edge/mr convs only."""

    def lin(i: int, o: int, bias: bool = True) -> int:
        return i * o + (o if bias else 0)

    def norm(ch: int) -> int:
        return 0 if c.norm == "none" else 2 * ch

    bias = c.bias or c.norm == "none"
    stem_bias = (c.bias if c.stem_bias is None else c.stem_bias) or c.norm == "none"
    fusion_bias = (c.bias if c.fusion_bias is None else c.fusion_bias) or c.norm == "none"
    total = lin(2 * c.in_channels, c.channels, stem_bias) + norm(c.channels)
    if c.block == "rev":  # G convs of C/G channels per block; one block when weight-tied
        w = c.channels // c.groups
        blocks = 1 if c.weight_tied else c.num_blocks - 1
        total += blocks * c.groups * (lin(2 * w, w, bias) + norm(w))
    elif c.block == "deq":  # one bare conv (bias forced, no norm)
        total += lin(2 * c.channels, c.channels, True)
    for i in range(1, c.num_blocks if c.block not in ("rev", "deq") else 1):
        c_in = c.channels * i if c.block == "dense" else c.channels
        if c.block == "res+":  # bare conv (bias forced) + the block's pre-norm
            total += lin(2 * c_in, c.channels, True) + norm(c_in)
        else:
            total += lin(2 * c_in, c.channels, bias) + norm(c.channels)
    feats = c.channels * (2 if c.fuse_ends else c.num_blocks)
    if c.block == "dense" and c.dense_fusion == "all":  # every cumulative output: C·(1 + … + L)
        feats = sum(c.channels * i for i in range(1, c.num_blocks + 1))
    total += lin(feats, c.fusion_channels, fusion_bias) + norm(c.fusion_channels)
    if c.task == "segmentation":
        width = feats + c.fusion_channels
    else:
        width = c.fusion_channels * (2 if c.pooling == "max+mean" else 1)
    for h in c.head_channels:
        total += lin(width, h, bias) + norm(h)
        width = h
    return total + lin(width, c.num_classes)


def tiny_input(config: ModelConfig, batch: int = 2, points: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, points, config.in_channels, generator=g)


# ---------------------------------------------------------------------------------- presets


def test_resgcn28_has_the_published_parameter_count():
    model = create_model("resgcn28")
    assert model.config.order == "conv_act_norm" and model.config.bias
    assert sum(p.numel() for p in model.parameters()) == 3_644_301
    # the prediction layer keeps the layout of a plain Linear(2816, 512) (split only in forward)
    assert model.head.layers[0].lin.weight.shape == (512, 2816)
    assert model.head.fusion.lin.weight.shape == (1024, 1792)
    assert len(model.blocks) == 27


def test_registry_has_the_required_presets():
    required = {
        "resgcn28", "densegcn28", "plaingcn28", "resgcn56", "resgcn112", "resgcn28w",
        "resmrgcn28", "resgcn28_tf", "plaingcn7", "plaingcn14", "plaingcn56", "resgcn7",
        "resgcn14", "resgcn4_tiny", "resgcn28_modelnet",
    }  # fmt: skip
    assert required <= set(ALL)
    assert ALL == sorted(ALL)
    assert list_models("plaingcn*") == [n for n in ALL if n.startswith("plaingcn")]


@pytest.mark.parametrize("name", [n for n in ALL if get_config(n).conv in ("edge", "mr")])
def test_preset_parameter_count_matches_architecture(name):
    config = get_config(name)
    with torch.device("meta"):  # big presets: build only
        model = DeepGCN(config)
    assert model.num_parameters() == expected_params(config)
    assert model.num_layers == config.num_blocks


def test_preset_settings():
    c = get_config("resgcn28")
    assert (c.k, c.channels, c.num_blocks, c.epsilon, c.dropout) == (16, 64, 28, 0.2, 0.3)
    assert [c.block_dilation(i) for i in (0, 1, 2, 27)] == [1, 1, 2, 27]
    assert get_config("resgcn28_tf").order == "conv_norm_act"
    assert get_config("resgcn28w").channels == 128
    assert get_config("resmrgcn28").conv == "mr"
    plain = get_config("plaingcn28")
    assert plain.block == "plain" and not plain.stochastic
    assert [plain.block_dilation(i) for i in range(28)] == [1] * 28
    m = get_config("resgcn28_modelnet")
    assert (m.task, m.k, m.in_channels, m.num_classes, m.dropout, m.pooling) == (
        "classification", 9, 3, 40, 0.5, "max+mean"
    )  # fmt: skip
    assert get_config("resgcn112").num_blocks == 112


def test_plain_model_has_no_dilation_and_no_stochastic_graphs():
    model = create_model("plaingcn7", k=4)
    assert all(isinstance(b, PlainBlock) for b in model.blocks)
    assert all(b.graph.dilation == 1 and not b.graph.stochastic for b in model.blocks)
    res = create_model("resgcn7", k=4)
    assert [b.graph.dilation for b in res.blocks] == [1, 2, 3, 4, 5, 6]
    # stochastic dilation only where it can change anything (d > 1)
    assert [b.graph.stochastic for b in res.blocks] == [False] + [True] * 5
    assert all(isinstance(b, ResBlock) for b in res.blocks)


# ---------------------------------------------------------------------------------- forward


@pytest.mark.parametrize("name", TINY)
def test_tiny_forward_backward_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = create_model(name)
    config = model.config
    x = tiny_input(config)
    logits = model(x)
    if config.task == "segmentation":
        assert logits.shape == (2, 32, config.num_classes)
        target = torch.randint(0, config.num_classes, (2, 32))
        loss = F.cross_entropy(logits.reshape(-1, config.num_classes), target.reshape(-1))
    else:
        assert logits.shape == (2, config.num_classes)
        loss = F.cross_entropy(logits, torch.tensor([0, 1]))
    assert torch.isfinite(logits).all()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}: {pname} has an all-zero gradient"


@pytest.mark.parametrize("name", TINY)
def test_eval_forward_is_deterministic_and_reuses_its_graphs(name):
    torch.manual_seed(1)
    model = create_model(name).eval()
    x = tiny_input(model.config, seed=3)
    with torch.no_grad():
        outs, graphs = model.forward_features(x, return_graphs=True)
        a = model.forward_head(outs)
        b = model(x)
        # forcing the very graphs the model built gives the same features and logits
        deep = model.config.block in ("rev", "deq")
        given = [graphs[0]] + [None] * (model.num_layers - 1) if deep else graphs
        outs2 = model.forward_features(x, graphs=given)
    assert torch.equal(a, b)
    assert all(torch.equal(u, v) for u, v in zip(outs, outs2, strict=True))
    if model.config.block in ("rev", "deq"):  # [h_0, h_{L-1}]; graphs [idx_0, stack graphs]
        assert len(outs) == 2 and graphs[0].shape == (2, 32, model.config.k)
        return
    assert len(graphs) == model.config.num_blocks
    assert all(g.shape == (2, 32, model.config.k) and g.dtype == torch.long for g in graphs)


def test_dynamic_graphs_are_dilated_knn_of_each_block_input():
    model = create_model("resgcn4_tiny").eval()
    x = tiny_input(model.config, seed=5)
    with torch.no_grad():
        outs, graphs = model.forward_features(x, return_graphs=True)
    k = model.config.k
    assert torch.equal(graphs[0], dilated_knn(x[..., :3], k, 1))
    for i in range(1, model.num_layers):
        assert torch.equal(graphs[i], dilated_knn(outs[i - 1], k, i)), f"block {i}"
    # the residual block adds its conv output to its input
    block = model.blocks[0]
    with torch.no_grad():
        expect = block.conv(outs[0], graphs[1]) + outs[0]
    torch.testing.assert_close(outs[1], expect)


def test_static_model_reuses_the_xyz_graph():
    model = create_model("resgcn4_tiny_static").eval()
    x = tiny_input(model.config, seed=6)
    with torch.no_grad():
        _, graphs = model.forward_features(x, return_graphs=True)
    assert all(b.graph is None for b in model.blocks)
    assert all(torch.equal(g, graphs[0]) for g in graphs)


def test_dense_blocks_grow_and_fuse_every_layer_once():
    model = create_model("densegcn4_tiny").eval()
    c = model.config.channels
    assert all(isinstance(b, DenseBlock) for b in model.blocks)
    assert [b.conv.in_channels for b in model.blocks] == [c, 2 * c, 3 * c]
    x = tiny_input(model.config, seed=7)
    with torch.no_grad():
        outs = model.forward_features(x)
    assert [o.shape[-1] for o in outs] == [c, 2 * c, 3 * c, 4 * c]
    fused = model.fusion_input(outs)
    expect = torch.cat([outs[0]] + [o[..., -c:] for o in outs[1:]], dim=-1)
    assert torch.equal(fused, expect)
    assert fused.shape[-1] == model.config.feature_channels


@pytest.mark.parametrize("block", ["res", "plain"])
def test_fusion_layers_select_which_layer_outputs_reach_the_head(block):
    """all: every layer; ends: [h_0, h_{L-1}]; last: h_{L-1} alone (the demo's setting, so the
    plain stack cannot route around its depth). The logits are the head of exactly those parts."""
    x = tiny_input(get_config("resgcn4_tiny"), seed=3)
    expected = {"all": lambda o: o, "ends": lambda o: [o[0], o[-1]], "last": lambda o: [o[-1]]}
    for fusion, pick in expected.items():
        torch.manual_seed(0)
        model = create_model("resgcn4_tiny", block=block, fusion_layers=fusion).eval()
        with torch.no_grad():
            outs = model.forward_features(x)
            parts = model.fusion_parts(outs)
            assert len(parts) == len(pick(outs))
            assert all(torch.equal(a, b) for a, b in zip(parts, pick(outs), strict=True))
            assert model.fusion_input(outs).shape[-1] == model.config.feature_channels
            assert torch.equal(model(x), model.head(pick(outs)))
    c = model.config
    assert c.replace(fusion_layers="last").feature_channels == c.channels
    assert c.replace(fusion_layers="ends").feature_channels == 2 * c.channels
    with pytest.raises(ConfigError, match="fusion_layers=last is not defined for block=dense"):
        create_model("densegcn4_tiny", fusion_layers="last")


def test_dense_all_fusion_concatenates_every_full_output():
    model = create_model("densegcn4_tiny_modelnet").eval()
    c = model.config.channels
    x = tiny_input(model.config, seed=9)
    with torch.no_grad():
        outs = model.forward_features(x)
    fused = model.fusion_input(outs)
    assert fused.shape[-1] == c * (1 + 2 + 3 + 4) == model.head.fusion.lin.in_features
    assert torch.equal(fused, torch.cat(outs, dim=-1))


def test_resplus_blocks_preactivate():
    model = create_model("resplusgcn4_tiny")
    assert all(isinstance(b, ResPlusBlock) for b in model.blocks)
    assert all(b.conv.norm is None for b in model.blocks)


def test_stochastic_dilation_only_in_training():
    model = create_model("resgcn4_tiny", epsilon=1.0)  # always stochastic in training
    x = tiny_input(model.config, points=64, seed=8)
    model.eval()
    with torch.no_grad():
        _, g_eval = model.forward_features(x, return_graphs=True)
    model.train()
    torch.manual_seed(0)
    differs = False
    with torch.no_grad():
        for _ in range(5):
            _, g_train = model.forward_features(x, return_graphs=True)
            differs |= not torch.equal(g_train[3], g_eval[3])
    assert differs


# ---------------------------------------------------------------------------------- heads


@pytest.mark.parametrize("order", ["conv_act_norm", "conv_norm_act"])
@pytest.mark.parametrize("training", [False, True])
def test_segmentation_head_split_trick_equals_concatenation(order, training):
    torch.manual_seed(0)
    head = SegmentationHead(24, 5, fusion_channels=16, head_channels=(12, 8), dropout=0.0,
                            order=order)  # fmt: skip
    for m in head.modules():  # non-trivial BN statistics and affine parameters
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(-1.5, 1.5)
            m.bias.data.uniform_(-1, 1)
    head.train(training)
    feats = torch.randn(3, 40, 24)
    out = head(feats)
    # textbook formulation: repeat the global feature per point, concatenate, plain Linear
    g = head.fusion(feats).amax(dim=1, keepdim=True).expand(-1, 40, -1)  # (B, N, 16)
    h = torch.cat([g, feats], dim=-1)  # (B, N, 40): global part first, as the original
    for layer in head.layers:
        h = layer(h)
    ref = head.classifier(h)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooling", ["max+mean", "max", "mean"])
def test_classification_head_pooling(pooling):
    torch.manual_seed(0)
    head = ClassificationHead(
        24, 7, fusion_channels=16, head_channels=(12,), pooling=pooling
    ).eval()
    feats = torch.randn(3, 40, 24)
    fused = head.fusion(feats)
    pooled = {
        "max": fused.amax(1),
        "mean": fused.mean(1),
        "max+mean": torch.cat([fused.amax(1), fused.mean(1)], -1),
    }[pooling]
    ref = head.classifier(head.layers[0](pooled))
    torch.testing.assert_close(head(feats), ref)


# ---------------------------------------------------------------------------------- config


@pytest.mark.parametrize("name", ALL)
def test_config_round_trip(name):
    config = get_config(name)
    d = json.loads(json.dumps(config.to_dict()))
    assert ModelConfig.from_dict(d) == config


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match=r"unknown model config key\(s\) \['chanels'\].*channels"):
        ModelConfig.from_dict({"chanels": 64})
    with pytest.raises(ConfigError, match="conv='foo'.*edge, mr, sage, gin"):
        ModelConfig(conv="foo")
    with pytest.raises(ConfigError, match="block='resnet'.*res, plain, dense, res\\+"):
        get_config("resgcn28", block="resnet")
    with pytest.raises(ConfigError, match="channels must be an int >= 1"):
        ModelConfig(channels=0)
    with pytest.raises(ConfigError, match="bias must be true or false"):
        ModelConfig(bias="yes")
    with pytest.raises(ConfigError, match="epsilon"):
        ModelConfig(epsilon=1.5)
    with pytest.raises(ConfigError, match="head_channels"):
        ModelConfig(head_channels=(512, "256"))
    with pytest.raises(ConfigError, match="order="):
        ModelConfig(order="norm_conv_act")


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError, match="unknown model 'resgcn29'.*resgcn28"):
        create_model("resgcn29")


def test_create_model_from_name_config_or_dict_with_overrides():
    m = create_model("resgcn4_tiny", channels=8, num_classes=5)
    assert (m.config.channels, m.config.num_classes) == (8, 5)
    assert m.stem.lin.weight.shape == (8, 18)
    m2 = create_model(m.config.to_dict())
    assert m2.config == m.config
    m3 = create_model(m.config, k=3)
    assert m3.config.k == 3 and m.config.k == 4  # the given config is not mutated
    with pytest.raises(ConfigError, match="unknown model config key"):
        create_model("resgcn4_tiny", width=3)


def test_bad_input_is_named():
    model = create_model("resgcn4_tiny")
    with pytest.raises(ValueError, match=r"\(B, N, 9\) channels-last.*\(2, 9, 32\)"):
        model(torch.rand(2, 9, 32))
    with pytest.raises(ValueError, match="at least k·d = 12 points"):
        model(torch.rand(2, 8, 9))
    with pytest.raises(ValueError, match="float"):
        model(torch.ones(2, 32, 9, dtype=torch.long))
    classifier = create_model("resgcn4_tiny_modelnet")
    with pytest.raises(ValueError, match="at least 2 clouds per batch"):
        classifier(torch.rand(1, 32, 3))
    assert classifier.eval()(torch.rand(1, 32, 3)).shape == (1, 40)  # fine in eval mode


# ---------------------------------------------------------------------------------- CLI


def test_cli_models_table(capsys):
    assert cli_main(["models"]) == 0
    out = capsys.readouterr().out
    for name in list_models(include_hidden=False) + list_models(kind="graph"):
        assert f"\n{name} " in out
    for name in TINY:  # test-only presets are registered but not listed
        assert f"\n{name} " not in out
    line = next(ln for ln in out.splitlines() if ln.startswith("resgcn28 "))
    assert line.split() == [
        "resgcn28", "segmentation", "28", "64", "16", "edge", "res", "conv_act_norm", "3,644,301"
    ]  # fmt: skip


def test_cli_models_show_and_filter(capsys):
    assert cli_main(["models", "--show", "resgcn28_modelnet", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["k"] == 9 and info["num_classes"] == 40
    assert info["params"] == expected_params(get_config("resgcn28_modelnet"))
    assert cli_main(["models", "plaingcn*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_models("plaingcn*", include_hidden=False)
    assert cli_main(["models", "nothing*"]) == 1
    assert "no model preset matches" in capsys.readouterr().err
    assert cli_main(["models", "--show", "nope"]) == 1
    assert "available models" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["resgcn28", "resgcn28_tf", "densegcn28", "resmrgcn28", "plaingcn28", "resgcn28_modelnet"],
)
def test_full_size_forward_backward(name):
    """Published-size presets on the fewest points they accept (k · deepest dilation)."""
    torch.manual_seed(0)
    model = create_model(name)
    config = model.config
    x = torch.rand(2, config.min_points, config.in_channels)  # BN needs > 1 cloud per batch
    logits = model(x)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


@pytest.mark.parametrize("name", ["resgcn4_tiny", "resgcn4_tiny_modelnet"])
def test_head_without_hidden_layers(name):
    torch.manual_seed(0)
    model = create_model(name, head_channels=[]).eval()
    assert len(model.head.layers) == 0
    x = tiny_input(model.config, seed=2)
    with torch.no_grad():
        feats = model.fusion_input(model.forward_features(x))
        logits = model(x)
        if model.config.task == "segmentation":
            g = model.head.fusion(feats).amax(1, keepdim=True).expand(-1, 32, -1)
            ref = model.head.classifier(torch.cat([g, feats], -1))
        else:
            ref = model.head.classifier(model.head.pool(model.head.fusion(feats)))
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------- memory-lean head


def _random_bn(module: torch.nn.Module) -> None:
    """Non-trivial BN statistics and affine parameters, including negative γ (min-pooling)."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(-1.5, 1.5)
            m.bias.data.uniform_(-1, 1)


@pytest.mark.parametrize("order", ["conv_act_norm", "conv_norm_act"])
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_lean_head_equals_plain_formulation_with_all_gradients(order, training, task):
    """Head fed per-layer parts (no concatenation kept, fusion recomputed in backward) == the
    plain cat → fusion → pool → repeat/concat → MLP, in outputs, input and parameter gradients
    and BN running statistics."""
    import copy

    torch.manual_seed(0)
    if task == "segmentation":
        head = SegmentationHead(24, 5, fusion_channels=16, head_channels=(12, 8), dropout=0.0,
                                order=order)  # fmt: skip
    else:
        head = ClassificationHead(24, 5, fusion_channels=16, head_channels=(12, 8), dropout=0.0,
                                  order=order)  # fmt: skip
    _random_bn(head)
    ref = copy.deepcopy(head)
    head.train(training)
    ref.train(training)
    widths = (8, 4, 12)  # three layers' outputs, concatenated along channels
    parts = [torch.randn(3, 40, w, requires_grad=True) for w in widths]
    cat = torch.cat([p.detach() for p in parts], dim=-1).requires_grad_()

    out = head(parts)
    fused = ref.fusion(cat)  # (B, N, 16) kept whole: the textbook formulation
    if task == "segmentation":
        g = fused.amax(dim=1, keepdim=True).expand(-1, 40, -1)
        h = torch.cat([g, cat], dim=-1)
        for layer in ref.layers:
            h = layer(h)
        expect = ref.classifier(h)
    else:
        h = ref.pool(fused).unsqueeze(1)
        for layer in ref.layers:
            h = layer(h)
        expect = ref.classifier(h).squeeze(1)
    torch.testing.assert_close(out, expect, rtol=1e-5, atol=1e-5)

    weight = torch.randn_like(out)
    (out * weight).sum().backward()
    (expect * weight).sum().backward()
    torch.testing.assert_close(
        torch.cat([p.grad for p in parts], -1), cat.grad, rtol=1e-5, atol=1e-5
    )
    for (name, p), q in zip(head.named_parameters(), ref.parameters(), strict=True):
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)
    for (name, b), c in zip(head.named_buffers(), ref.buffers(), strict=True):
        torch.testing.assert_close(b, c, msg=name)  # running stats updated exactly once
    if not training:  # the concatenated tensor input is the same function
        torch.testing.assert_close(head(cat.detach()), out, rtol=1e-5, atol=1e-5)


def test_concat_linear_equals_linear_of_concatenation_over_many_chunks(monkeypatch):
    from pointseg.models import heads

    monkeypatch.setattr(heads, "_CONCAT_ROWS", 7)  # many chunks, a ragged last one
    torch.manual_seed(2)
    parts = [torch.randn(2, 25, w, requires_grad=True) for w in (3, 5)]
    weight = torch.randn(6, 8, requires_grad=True)
    bias = torch.randn(6, requires_grad=True)
    out = heads.concat_linear(weight, bias, parts)
    cat = torch.cat([p.detach() for p in parts], -1).requires_grad_()
    w2, b2 = weight.detach().requires_grad_(), bias.detach().requires_grad_()
    expect = torch.nn.functional.linear(cat, w2, b2)
    torch.testing.assert_close(out, expect)
    grad = torch.randn_like(out)
    out.backward(grad)
    expect.backward(grad)
    torch.testing.assert_close(torch.cat([p.grad for p in parts], -1), cat.grad)
    torch.testing.assert_close(weight.grad, w2.grad)
    torch.testing.assert_close(bias.grad, b2.grad)


def test_lean_head_saves_neither_concatenation_nor_fusion_activations():
    """Tensors kept for backward by the segmentation head fed per-layer parts: nothing as wide
    as the concatenation (F) or the fusion (C) per point."""
    torch.manual_seed(0)
    head = SegmentationHead(96, 5, fusion_channels=80, head_channels=(12, 8)).train()
    parts = [torch.randn(2, 50, 32, requires_grad=True) for _ in range(3)]
    widths = []

    def pack(t):
        if t.numel() >= 2 * 50 * 32:  # per-point tensors (weights are smaller)
            widths.append(t.numel() // (2 * 50))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = head(parts)
    out.sum().backward()
    assert widths and max(widths) < 80, widths
    assert all(p.grad is not None for p in parts)


def test_forward_head_gives_the_per_layer_parts_and_equals_the_concatenation():
    torch.manual_seed(0)
    model = create_model("resgcn4_tiny").eval()
    x = tiny_input(model.config, seed=4)
    with torch.no_grad():
        outs = model.forward_features(x)
        seen = []
        plain = model.head.forward

        def spy(feats):
            seen.append(feats)
            return plain(feats)

        model.head.forward = spy
        lean = model.forward_head(outs)  # the head gets the parts, never the concatenation
        full = plain(model.fusion_input(outs))  # the same head on the (B, N, F) tensor
    assert isinstance(seen[0], list) and len(seen[0]) == len(model.fusion_parts(outs))
    assert sum(p.shape[-1] for p in seen[0]) == model.config.feature_channels
    torch.testing.assert_close(lean, full, rtol=1e-5, atol=1e-5)
