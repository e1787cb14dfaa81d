"""Sparse (edge_index) convolutions equal the dense (B, N, k) path on the same graph, and the
point-cloud blocks (same registry, same names) run on sparse graphs."""

from __future__ import annotations

import copy

import pytest
import torch

from pointseg.nn import BLOCK_REGISTRY, CONV_REGISTRY, create_block, create_conv
from pointseg.nn.sparse_conv import SPARSE_CONV_REGISTRY, create_sparse_conv, idx_to_edge_index

B, N, C_IN, C_OUT, K = 2, 20, 6, 6, 5


def _graph(seed: int, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, C_IN, generator=gen, dtype=dtype)
    idx = torch.randint(0, N, (B, N, K), generator=gen)  # random graph, repeats allowed
    return x, idx


def test_registry_covers_every_dense_conv():
    assert set(CONV_REGISTRY) <= set(SPARSE_CONV_REGISTRY)
    with pytest.raises(ValueError, match="valid names"):
        create_sparse_conv("nope", 4, 4)


@pytest.mark.parametrize("name", sorted(CONV_REGISTRY))
@pytest.mark.parametrize("order", ["conv_act_norm", "conv_norm_act"])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_equals_dense_on_random_graph(name, order, train, seed):
    torch.manual_seed(seed)
    kw = {"aggr": "mean"} if name == "sage" and seed else {}
    dense = create_conv(name, C_IN, C_OUT, order=order, **kw).double()
    if name == "edge":
        dense.fused = seed == 0  # the fused and the textbook dense path both equal the sparse one
    sparse = create_sparse_conv(name, C_IN, C_OUT, order=order, **kw).double()
    sparse.load_state_dict(dense.state_dict(), strict=True)
    if not train:  # eval mode uses running statistics: give them non-trivial values
        dense(*_graph(seed + 7))
        sparse.load_state_dict(dense.state_dict())
    dense.train(train)
    sparse.train(train)
    x, idx = _graph(seed)
    xd = x.clone().requires_grad_()
    xs = x.reshape(B * N, C_IN).clone().requires_grad_()
    a = dense(xd, idx).reshape(B * N, C_OUT)
    b = sparse(xs, idx_to_edge_index(idx))
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    w = torch.randn(a.shape, dtype=a.dtype, generator=torch.Generator().manual_seed(3))
    (a * w).sum().backward()
    (b * w).sum().backward()
    torch.testing.assert_close(xd.grad.reshape(B * N, C_IN), xs.grad, rtol=1e-9, atol=1e-11)
    for (pname, p), q in zip(dense.named_parameters(), sparse.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-11, msg=pname)
    for (bname, u), v in zip(dense.named_buffers(), sparse.buffers(), strict=True):
        torch.testing.assert_close(u, v, msg=bname)


def test_nodes_without_in_edges_aggregate_to_zero():
    conv = create_sparse_conv("sage", 3, 4, norm=None, act=None, aggr="max")
    x = torch.randn(4, 3)
    ei = torch.tensor([[0, 1], [1, 2]])  # node 0 and 3 receive nothing
    out = conv(x, ei)
    torch.testing.assert_close(out[3], conv.lin_root(x[3]))


@pytest.mark.parametrize("block", sorted(BLOCK_REGISTRY))
@pytest.mark.parametrize("conv", sorted(CONV_REGISTRY))
def test_blocks_sparse_equal_dense(block, conv):
    """The same block class around the sparse conv, given edge_index, equals the dense block."""
    torch.manual_seed(0)
    kw = {"norm": None, "act": None} if block == "res+" else {}
    bkw = {"norm": "batch", "act": "relu"} if block == "res+" else {}
    dense = create_block(block, create_conv(conv, C_IN, C_OUT, **kw), **bkw).double()
    sparse = create_block(block, create_sparse_conv(conv, C_IN, C_OUT, **kw), **bkw).double()
    sparse.load_state_dict(dense.state_dict(), strict=True)
    x, idx = _graph(5)
    ei = idx_to_edge_index(idx)
    a, _ = dense(x, idx)
    b, used = sparse(x.reshape(B * N, C_IN), ei)
    assert used is ei
    torch.testing.assert_close(a.reshape(B * N, -1), b, rtol=1e-10, atol=1e-12)


def test_res_plus_block_with_gen_conv_and_edge_features():
    torch.manual_seed(0)
    conv = create_sparse_conv("gen", 8, 8, aggr="softmax", learn_t=True, edge_dim=3)
    blk = create_block("res+", copy.deepcopy(conv), norm="layer", act="relu", dropout=0.0)
    x = torch.randn(10, 8)
    ei = torch.randint(0, 10, (2, 30))
    ea = torch.randn(30, 3)
    out, _ = blk(x, ei, edge_attr=ea)
    h = torch.relu(blk.norm(x))
    torch.testing.assert_close(out, x + blk.conv(h, ei, edge_attr=ea))
    out.sum().backward()
    assert blk.conv.aggr_module.t.grad is not None
