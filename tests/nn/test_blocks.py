"""Blocks over every registered conv: shapes, update rules, static == dynamic on the same graph,
gradients, and error messages."""

from __future__ import annotations

import copy

import pytest
import torch

from pointseg.graph import DilatedKnnGraph, dilated_knn
from pointseg.nn import BLOCK_REGISTRY, CONV_REGISTRY, create_block, create_conv

B, N, C, K = 2, 40, 8, 4


def _conv(block: str, conv: str, c_out: int = C):
    # res+ is pre-activation: its conv carries no norm/act of its own (DeeperGCN).
    kw = {"norm": None, "act": None} if block == "res+" else {}
    return create_conv(conv, C, c_out, **kw)


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, N, C, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("conv", sorted(CONV_REGISTRY))
@pytest.mark.parametrize("block", sorted(BLOCK_REGISTRY))
def test_static_equals_dynamic_and_gradients(block, conv):
    torch.manual_seed(0)
    growth = 6 if block == "dense" else C
    dynamic = create_block(block, _conv(block, conv, growth), DilatedKnnGraph(K, dilation=2))
    static = create_block(block, copy.deepcopy(dynamic.conv))
    static.load_state_dict(dynamic.state_dict())
    x = _x(1).requires_grad_(True)

    out, idx = dynamic(x)
    want_idx = dilated_knn(x.detach(), K, 2)  # the graph is built from the block's own input
    assert torch.equal(idx, want_idx)
    out_static, idx_static = static(x, want_idx)
    torch.testing.assert_close(out, out_static)
    assert idx_static is want_idx
    expected_c = C + growth if block == "dense" else C
    assert out.shape == (B, N, expected_c) and dynamic.out_channels == expected_c

    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in dynamic.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, f"{block}/{conv}: {name} got a zero gradient"


def test_update_rules():
    torch.manual_seed(3)
    x = _x(3)
    idx = dilated_knn(x, K, 1)
    conv = create_conv("edge", C, C).eval()
    h = conv(x, idx)
    torch.testing.assert_close(create_block("plain", conv)(x, idx)[0], h)
    torch.testing.assert_close(create_block("res", conv)(x, idx)[0], h + x)
    torch.testing.assert_close(create_block("res", conv, res_scale=0.5)(x, idx)[0], h + 0.5 * x)
    torch.testing.assert_close(create_block("dense", conv)(x, idx)[0], torch.cat([x, h], -1))
    plus = create_block("res+", create_conv("mr", C, C, norm=None, act=None), dropout=0.5).eval()
    with torch.no_grad():
        plus.norm.weight.uniform_(0.5, 1.5)
        plus.norm.running_mean.uniform_(-1, 1)
    pre = torch.relu(plus.norm(x))  # eval: dropout is the identity
    torch.testing.assert_close(plus(x, idx)[0], x + plus.conv(pre, idx))
    # Training mode: dropout acts before the conv, so outputs are random but the residual holds.
    plus.train()
    out1, out2 = plus(x, idx)[0], plus(x, idx)[0]
    assert not torch.allclose(out1, out2)


def test_given_idx_wins_over_graph_and_graph_is_rebuilt_per_input():
    x1, x2 = _x(4), _x(5)
    block = create_block("res", create_conv("edge", C, C), DilatedKnnGraph(K))
    idx_fixed = dilated_knn(x1, K)
    assert block(x2, idx_fixed)[1] is idx_fixed
    assert not torch.equal(block(x2)[1], idx_fixed)
    assert torch.equal(block(x2)[1], dilated_knn(x2, K))


def test_block_errors():
    conv = create_conv("edge", C, C)
    with pytest.raises(ValueError, match=r"unknown block 'resnet'.*'dense'.*'res\+'"):
        create_block("resnet", conv)
    with pytest.raises(ValueError, match="static block .* needs idx"):
        create_block("plain", conv)(_x())
    with pytest.raises(ValueError, match="keep the channel count"):
        create_block("res", create_conv("edge", C, 2 * C))
    with pytest.raises(ValueError, match="keep the channel count"):
        create_block("res+", create_conv("edge", C, 2 * C))
    assert "dynamic" in repr(create_block("res", conv, DilatedKnnGraph(K)))
