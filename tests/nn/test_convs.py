"""Every registered graph convolution: shapes, gradients, orders, BatchNorm modes, and equality with
explicit formulas and with PyTorch Geometric's sparse operators on the same graph."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pointseg.nn import CONV_REGISTRY, Lin, PointMLP, create_act, create_conv, create_norm
from pointseg.nn.mr_conv import MRConv
from pointseg.nn.sage_conv import SAGEConv

B, N, C_IN, C_OUT, K = 2, 24, 8, 12, 5


def _inputs(seed: int = 0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, C_IN, generator=gen, dtype=dtype)
    idx = torch.randint(0, N, (B, N, K), generator=gen)
    idx[..., 0] = torch.arange(N)
    return x, idx


def _edge_index(idx: torch.Tensor) -> torch.Tensor:
    """Dense (B, N, k) neighbour lists → PyG edge_index over B·N nodes (source j → target i)."""
    b, n, k = idx.shape
    src = (idx + torch.arange(b).view(-1, 1, 1) * n).reshape(-1)
    dst = torch.arange(b * n).repeat_interleave(k)
    return torch.stack([src, dst])


@pytest.mark.parametrize("name", sorted(CONV_REGISTRY))
@pytest.mark.parametrize("order", ["conv_act_norm", "conv_norm_act"])
def test_forward_shape_and_every_parameter_gets_gradient(name, order):
    torch.manual_seed(0)
    conv = create_conv(name, C_IN, C_OUT, order=order)
    x, idx = _inputs()
    x.requires_grad_(True)
    out = conv(x, idx)
    assert out.shape == (B, N, C_OUT) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in conv.named_parameters():
        assert p.grad is not None, pname
        # With Linear → BN (conv_norm_act) a bias right before BN is cancelled by it: zero grad.
        if order == "conv_norm_act" and pname.endswith("bias") and "norm" not in pname:
            continue
        assert p.grad.abs().sum() > 0, f"{name}: parameter {pname} got a zero gradient"
    assert "\n" not in repr(conv) and type(conv).__name__ in repr(conv)


@pytest.mark.parametrize("name", sorted(CONV_REGISTRY))
def test_orders_differ_as_they_should(name):
    """conv_norm_act ends in ReLU (output >= 0); conv_act_norm ends in BN (negative values)."""
    torch.manual_seed(1)
    x, idx = _inputs(1)
    a = create_conv(name, C_IN, C_OUT, order="conv_act_norm")
    b = create_conv(name, C_IN, C_OUT, order="conv_norm_act")
    b.load_state_dict(a.state_dict())
    ya, yb = a(x, idx), b(x, idx)
    assert (yb >= 0).all() and (yb == 0).any()
    assert (ya < 0).any()
    assert not torch.allclose(ya, yb)
    if name != "edge":  # per-point convs end in BN over the B·N points: zero mean, unit variance
        flat = ya.reshape(-1, C_OUT)
        torch.testing.assert_close(flat.mean(0), torch.zeros(C_OUT), atol=1e-5, rtol=0)
        var = flat.var(0, unbiased=False)  # 1, or 0 for a channel ReLU zeroed everywhere
        assert torch.minimum((var - 1).abs(), var).max() < 1e-3, var


@pytest.mark.parametrize("name", sorted(CONV_REGISTRY))
def test_batchnorm_train_and_eval_modes(name):
    torch.manual_seed(2)
    conv = create_conv(name, C_IN, C_OUT)
    x, idx = _inputs(2)
    buffers = {k: v.clone() for k, v in conv.state_dict().items() if "running" in k}
    conv.train()
    y_train_full = conv(x, idx)
    y_train_one = conv(x[:1], idx[:1])
    changed = {k: v for k, v in conv.state_dict().items() if "running" in k}
    assert any(not torch.equal(buffers[k], changed[k]) for k in buffers), (
        "running stats not updated"
    )
    # Training mode: batch statistics, so a sample's output depends on the rest of the batch.
    assert not torch.allclose(y_train_full[:1], y_train_one)

    conv.eval()
    before = copy.deepcopy(conv.state_dict())
    y_eval_full = conv(x, idx)
    y_eval_one = conv(x[:1], idx[:1])
    torch.testing.assert_close(y_eval_full[:1], y_eval_one)  # running stats: per-sample
    for k, v in conv.state_dict().items():
        assert torch.equal(v, before[k]), f"eval mode changed {k}"


def test_create_conv_unknown_name_lists_valid():
    with pytest.raises(ValueError, match=r"unknown graph convolution 'edgy'.*'edge'.*'mr'"):
        create_conv("edgy", 3, 4)
    with pytest.raises(ValueError, match="unknown norm"):
        create_conv("mr", 3, 4, norm="group")
    with pytest.raises(ValueError, match="unknown activation"):
        create_conv("sage", 3, 4, act="swishy")
    with pytest.raises(ValueError, match=r"x must be \(B, N, 8\)"):
        create_conv("gin", 8, 4)(torch.randn(2, 5, 3), torch.zeros(2, 5, 2, dtype=torch.long))


def test_reset_parameters_restores_init():
    for name in CONV_REGISTRY:
        conv = create_conv(name, C_IN, C_OUT)
        with torch.no_grad():
            for p in conv.parameters():
                p.fill_(7.0)
        conv.reset_parameters()
        for pname, p in conv.named_parameters():
            if pname.endswith("norm.weight"):
                assert torch.equal(p, torch.ones_like(p)), (name, pname)
            else:
                assert not torch.all(p == 7.0), (name, pname)


def test_mrconv_matches_formula():
    x, idx = _inputs(3, torch.float64)
    conv = MRConv(C_IN, C_OUT, norm=None, act="relu").double()
    xj = torch.stack([x[b][idx[b]] for b in range(B)])  # (B, N, k, C)
    rel = (xj - x.unsqueeze(2)).max(2).values  # max_j (h_j − h_i)
    want = torch.relu(conv.lin(torch.cat([x, rel], -1)))
    torch.testing.assert_close(conv(x, idx), want)


@pytest.mark.parametrize("aggr", ["max", "mean", "sum"])
def test_sage_matches_pyg(aggr):
    pyg = pytest.importorskip("torch_geometric.nn")
    x, idx = _inputs(4, torch.float64)
    conv = SAGEConv(C_IN, C_OUT, norm=None, act=None, aggr=aggr).double()
    ref = pyg.SAGEConv(C_IN, C_OUT, aggr=aggr, root_weight=True).double()
    with torch.no_grad():  # PyG: lin_l (neighbours, with bias) + lin_r (root, no bias)
        ref.lin_l.weight.copy_(conv.lin_neigh.weight)
        ref.lin_l.bias.copy_(conv.lin_root.bias)
        ref.lin_r.weight.copy_(conv.lin_root.weight)
    want = ref(x.reshape(B * N, C_IN), _edge_index(idx)).view(B, N, C_OUT)
    torch.testing.assert_close(conv(x, idx), want)


@pytest.mark.parametrize("train_eps", [False, True])
def test_gin_matches_pyg(train_eps):
    pyg = pytest.importorskip("torch_geometric.nn")
    x, idx = _inputs(5, torch.float64)
    conv = create_conv("gin", C_IN, C_OUT, norm=None, eps=0.3, train_eps=train_eps).double()
    ref = pyg.GINConv(copy.deepcopy(conv.mlp), eps=0.3, train_eps=train_eps).double()
    ref.nn.load_state_dict(conv.mlp.state_dict())  # PyG re-initialises the nn it is given
    want = ref(x.reshape(B * N, C_IN), _edge_index(idx)).view(B, N, C_OUT)
    torch.testing.assert_close(conv(x, idx), want)
    assert isinstance(conv.eps, nn.Parameter) == train_eps


@pytest.mark.parametrize("order", ["conv_act_norm", "conv_norm_act"])
def test_edge_conv_matches_pyg(order):
    """Our fused EdgeConv (training-mode BN over edges) == PyG EdgeConv with the same per-edge MLP."""
    pyg = pytest.importorskip("torch_geometric.nn")
    x, idx = _inputs(6, torch.float64)
    conv = create_conv("edge", C_IN, C_OUT, order=order).double()
    with torch.no_grad():
        conv.norm.weight.copy_(torch.linspace(-1.5, 1.5, C_OUT))
        conv.norm.bias.copy_(torch.linspace(-0.5, 0.5, C_OUT))
    # PyG's messages are the (B·N·k, 2C) edge features, so BN over them = BN over all edges.
    ref = pyg.EdgeConv(Lin(C_IN * 2, C_OUT, order=order).double(), aggr="max")
    ref.nn.load_state_dict(conv.state_dict())
    want = ref(x.reshape(B * N, C_IN), _edge_index(idx)).view(B, N, C_OUT)
    torch.testing.assert_close(conv(x, idx), want)
    torch.testing.assert_close(conv.norm.running_var, ref.nn.norm.running_var)


def test_lin_and_point_mlp():
    torch.manual_seed(7)
    x = torch.randn(2, 10, 6)
    a = Lin(6, 4, order="conv_act_norm")
    b = Lin(6, 4, order="conv_norm_act")
    b.load_state_dict(a.state_dict())
    h = a.lin(x)
    torch.testing.assert_close(
        a(x),
        nn.functional.batch_norm(
            torch.relu(h).reshape(-1, 4), None, None, a.norm.weight, a.norm.bias, training=True
        ).view(2, 10, 4),
    )
    assert (b(x) >= 0).all()
    mlp = PointMLP([6, 16, 8, 3], dropout=0.5, last_plain=True)
    assert isinstance(mlp[-1], nn.Linear) and mlp(x).shape == (2, 10, 3)
    assert sum(isinstance(m, nn.Dropout) for m in mlp) == 2
    assert create_norm(None, 4) is None and create_norm("none", 4) is None
    ln = create_norm("layer", 6)
    torch.testing.assert_close(ln(x).mean(-1), torch.zeros(2, 10), atol=1e-5, rtol=0)
    inorm = create_norm("instance", 6)
    torch.testing.assert_close(inorm(x).mean(1), torch.zeros(2, 6), atol=1e-5, rtol=0)
    assert isinstance(create_act("leakyrelu"), nn.LeakyReLU)
    assert isinstance(create_act(None), nn.Identity)
