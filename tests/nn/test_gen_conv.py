"""GENConv and its aggregations: equal to PyG's GENConv on the same weights, and the limits the
DeeperGCN paper states (softmax → max as β grows, = mean at β = 0; power mean p = 1 = mean;
learnable β / p / MsgNorm scale get gradients)."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import GENConv as PyGGENConv
from torch_geometric.utils import scatter

from pointseg.nn.aggregation import AGGREGATIONS, PowerMeanAggregation, create_aggregation
from pointseg.nn.gen_conv import GENConv

N, E, C = 12, 40, 8


def _graph(seed: int = 0, dtype=torch.float64):
    """Random graph where every node has an incoming edge (a self loop), positive features."""
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, N, (2, E), generator=gen)
    ei = torch.cat([ei, torch.arange(N).repeat(2, 1)], dim=1)
    x = torch.rand(N, C, generator=gen, dtype=dtype) + 0.1
    ea = torch.rand(ei.shape[1], C, generator=gen, dtype=dtype)
    return x, ei, ea


CASES = [
    ("softmax", {}),
    ("softmax", {"t": 0.7, "learn_t": True}),
    ("softmax", {"t": 2.0, "semi_grad": True}),
    ("powermean", {"p": 2.5, "learn_p": True}),
    ("powermean", {"p": 1.0}),
    ("sum", {}),
    ("mean", {}),
    ("max", {}),
    ("softmax", {"msg_norm": True, "learn_msg_scale": True}),
    ("softmax", {"norm": "layer", "num_layers": 3, "bias": True}),
    ("softmax", {"norm": None, "num_layers": 1}),
]


@pytest.mark.parametrize("aggr,kw", CASES)
@pytest.mark.parametrize("edges", ["none", "same", "edge_dim"])
def test_equals_pyg_genconv_on_same_weights(aggr, kw, edges):
    torch.manual_seed(0)
    x, ei, ea = _graph()
    edge_dim = 3 if edges == "edge_dim" else None
    ours = GENConv(C, C, aggr=aggr, edge_dim=edge_dim, **kw).double()
    # PyG's constructor calls reset_parameters: build it first, then load our weights into it.
    ref = PyGGENConv(
        C,
        C,
        aggr=aggr if not kw.get("semi_grad") else "softmax_sg",
        edge_dim=edge_dim,
        **{k: v for k, v in kw.items() if k != "semi_grad"},
    ).double()
    ref.load_state_dict(ours.state_dict(), strict=True)
    attr = None if edges == "none" else (ea[:, :3].clone() if edge_dim else ea.clone())
    if attr is not None and edge_dim:
        attr = attr - 0.5  # lin_edge output is mixed-sign; keep messages positive below
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    if aggr == "powermean":  # messages must stay inside PyG's clamp range [1e-4, 100]
        attr = None if attr is None else attr.abs() if not edge_dim else None
    a, b = ours(xa, ei, attr), ref(xb, ei, attr)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    w = torch.linspace(-1, 1, a.numel(), dtype=a.dtype).view_as(a)
    (a * w).sum().backward()
    (b * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-9, atol=1e-11)
    for (name, p), q in zip(ours.named_parameters(), ref.parameters(), strict=True):
        if p.grad is None:
            assert q.grad is None, name
        else:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-11, msg=name)


def test_different_widths_match_pyg():
    torch.manual_seed(1)
    x, ei, _ = _graph(1)
    ours = GENConv(C, 5, aggr="softmax", learn_t=True).double()
    ref = PyGGENConv(C, 5, aggr="softmax", learn_t=True).double()
    ref.load_state_dict(ours.state_dict(), strict=True)
    torch.testing.assert_close(ours(x, ei), ref(x, ei), rtol=1e-10, atol=1e-12)


def _messages(seed=0):
    gen = torch.Generator().manual_seed(seed)
    m = torch.rand(30, 4, generator=gen, dtype=torch.float64) * 3 + 1e-3
    index = torch.randint(0, 6, (30,), generator=gen)
    index[:6] = torch.arange(6)
    return m, index


def test_softmax_tends_to_max_and_is_mean_at_zero():
    m, index = _messages()
    mx = scatter(m, index, 0, dim_size=6, reduce="max")
    mean = scatter(m, index, 0, dim_size=6, reduce="mean")
    torch.testing.assert_close(create_aggregation("softmax", t=0.0)(m, index, dim_size=6), mean)
    gaps = [
        (mx - create_aggregation("softmax", t=beta)(m, index, dim_size=6)).abs().max().item()
        for beta in (1.0, 10.0, 100.0, 1e4)
    ]
    assert all(a > b for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 1e-8


def test_powermean_limits_and_formula():
    m, index = _messages(1)
    mean = scatter(m, index, 0, dim_size=6, reduce="mean")
    mx = scatter(m, index, 0, dim_size=6, reduce="max")
    torch.testing.assert_close(PowerMeanAggregation(p=1.0)(m, index, dim_size=6), mean)
    for p in (-2.0, 0.5, 3.0):
        expected = scatter(m.pow(p), index, 0, dim_size=6, reduce="mean").pow(1 / p)
        torch.testing.assert_close(PowerMeanAggregation(p=p)(m, index, dim_size=6), expected)
    # large p: no overflow (m^p would be inf), and close to the max
    big = PowerMeanAggregation(p=2000.0)(m * 1e3, index, dim_size=6)
    assert torch.isfinite(big).all()
    torch.testing.assert_close(big, mx * 1e3, rtol=2e-3, atol=0)
    # tiny messages are not clamped (PyG's clamps them to 1e-4)
    tiny = torch.full((3, 2), 1e-7, dtype=torch.float64)
    out = PowerMeanAggregation(p=2.0)(tiny, torch.zeros(3, dtype=torch.long), dim_size=2)
    torch.testing.assert_close(out, torch.tensor([[1e-7, 1e-7], [0.0, 0.0]], dtype=torch.float64))


def test_input_is_not_modified():
    m, index = _messages(2)
    m0 = m.clone()
    for name in AGGREGATIONS:
        create_aggregation(name, p=3.0)(m, index, dim_size=6)
    assert torch.equal(m, m0)


@pytest.mark.parametrize("aggr,key", [("softmax", "aggr_module.t"), ("powermean", "aggr_module.p")])
def test_learnable_beta_and_p_get_gradients(aggr, key):
    torch.manual_seed(0)
    x, ei, _ = _graph(dtype=torch.float32)
    conv = GENConv(
        C,
        C,
        aggr=aggr,
        learn_t=True,
        learn_p=True,
        t=0.5,
        p=2.0,
        msg_norm=True,
        learn_msg_scale=True,
    )
    conv(x, ei).square().sum().backward()
    params = dict(conv.named_parameters())
    for name in (key, "msg_norm.scale"):
        g = params[name].grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name


def test_fixed_beta_is_fully_differentiable_unless_semi_grad():
    """A fixed β still lets gradients flow through the softmax weights (the documented mistake
    was silently stopping them); semi_grad=True is the only way to drop that term."""
    x, ei, _ = _graph(dtype=torch.float64)
    grads = {}
    for sg in (False, True):
        torch.manual_seed(0)
        conv = GENConv(C, C, aggr="softmax", t=3.0, semi_grad=sg, norm=None).double()
        xx = x.clone().requires_grad_()
        conv(xx, ei).sum().backward()
        grads[sg] = xx.grad
    assert (grads[False] - grads[True]).abs().max() > 1e-6
    with pytest.raises(ValueError, match="semi_grad"):
        GENConv(C, C, learn_t=True, semi_grad=True)


def test_bad_input_errors():
    conv = GENConv(C, C)
    x, ei, _ = _graph(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"x must be \(N, 8\)"):
        conv(x[:, :3], ei)
    with pytest.raises(ValueError, match=r"edge_index must be \(2, E\)"):
        conv(x, ei.t())
    with pytest.raises(ValueError, match="edge_attr"):
        conv(x, ei, torch.zeros(ei.shape[1], 3))
    with pytest.raises(ValueError, match="unknown aggregation"):
        GENConv(C, C, aggr="median")
    assert "\n" not in repr(conv) and "GENConv" in repr(conv)
