"""Grouped reversible blocks and `RevGCN`: exact inverse, gradients equal to ordinary autograd on
dense dynamic kNN and sparse graphs (same weights, graphs, masks), graph replay in backward
(stochastic dilation included), neighbour-flip detection, BatchNorm updated once, weight tying."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from pointseg.graph import dilated_knn
from pointseg.nn import EdgeConv, MRConv, PointBatchNorm
from pointseg.nn.reversible import (
    GraphMismatchError,
    GraphMismatchWarning,
    GroupRevBlock,
    RevGCN,
    RevGraphFn,
    graph_checksum,
)

B, N, C, K = 2, 40, 8, 4


@pytest.fixture(autouse=True)
def _float64():
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


def _block(groups: int = 2, conv=EdgeConv, pre_act: bool = False) -> GroupRevBlock:
    c = C // groups
    if pre_act:  # DeeperGCN / RevGNN order: norm → act → (shared dropout) → bare conv
        fns = [
            RevGraphFn(conv(c, c, norm=None, act=None), PointBatchNorm(c), nn.ReLU())
            for _ in range(groups)
        ]
    else:
        fns = [RevGraphFn(conv(c, c)) for _ in range(groups)]
    return GroupRevBlock(fns)


def _stack(layers: int = 4, groups: int = 2, **kw) -> RevGCN:
    torch.manual_seed(0)
    dil = [1 + (i % 3) for i in range(layers)]
    kw = {"k": K, "dilations": dil, "keep_graphs": False, **kw}  # the rebuild path by default
    return RevGCN([_block(groups, pre_act=i % 2 == 1) for i in range(layers)], **kw)


def _x(seed: int = 0, requires_grad: bool = True) -> torch.Tensor:
    x = torch.randn(B, N, C, generator=torch.Generator().manual_seed(seed))
    return x.requires_grad_(requires_grad)


def _run(model: nn.Module, x: torch.Tensor, seed: int, *args) -> torch.Tensor:
    """Forward with a fixed RNG (stochastic dilation, dropout mask), backward of a fixed loss."""
    torch.manual_seed(seed)
    y = model(x, *args)
    w = torch.linspace(-1, 1, y.numel()).view_as(y)
    (y * w + 0.1 * y.square()).sum().backward()
    return y


def _assert_same_grads(a: nn.Module, b: nn.Module, tol: float = 1e-10) -> None:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    for name in pa:
        assert pa[name].grad is not None, name
        torch.testing.assert_close(pa[name].grad, pb[name].grad, rtol=tol, atol=tol, msg=name)


# ----------------------------------------------------------------------------------- inverse


@pytest.mark.parametrize("groups", [2, 3, 4])
def test_inverse_of_forward_reconstructs_the_input(groups):
    torch.manual_seed(1)
    block = _block(groups, pre_act=True).eval()
    x = torch.randn(B, N, 12)
    block = GroupRevBlock([RevGraphFn(MRConv(12 // groups, 12 // groups)) for _ in range(groups)])
    block.eval()
    idx = dilated_knn(x, K, 2)
    mask = torch.rand(B, N, 12 // groups)
    with torch.no_grad():
        y = block(x, idx, mask)
        err = (block.inverse(y, idx, mask) - x).abs().max().item()
    print(f"groups={groups}: max |inverse(forward(x)) - x| = {err:.2e}")
    assert err < 1e-13
    assert (y - x).abs().max() > 1e-2  # the block is not the identity


def test_dynamic_inverse_rebuilds_each_group_graph_from_its_input():
    torch.manual_seed(2)
    block = _block(2).eval()
    x = torch.randn(B, N, C)

    def knn_of(i, h):
        return dilated_knn(h, K, 2)

    with torch.no_grad():
        y = torch.cat(block.forward_groups(block.split(x), knn_of, None), -1)
        back = torch.cat(block.inverse_groups(block.split(y), knn_of, None), -1)
    err = (back - x).abs().max().item()
    print(f"dynamic kNN block: max |inverse(forward(x)) - x| = {err:.2e}")
    assert err < 1e-13


def test_group_copies_are_initialised_independently():
    torch.manual_seed(3)
    block = GroupRevBlock.from_fn(RevGraphFn(EdgeConv(4, 4)), groups=3)
    w = [f.conv.lin.weight for f in block.fns]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    with pytest.raises(ValueError, match="distinct modules"):
        fn = RevGraphFn(EdgeConv(4, 4))
        GroupRevBlock([fn, fn])
    with pytest.raises(ValueError, match="G >= 2"):
        GroupRevBlock([RevGraphFn(EdgeConv(4, 4))])
    with pytest.raises(ValueError, match="do not split into 3"):
        block(torch.randn(1, 8, 8), None)


# ------------------------------------------------------------------- gradients: dense dynamic


@pytest.mark.parametrize("keep_graphs", [False, True])
def test_dense_dynamic_gradients_equal_ordinary_autograd(keep_graphs):
    # stochastic dilation firing half the time and a shared dropout mask: both must be replayed
    rev = _stack(stochastic=True, epsilon=0.5, dropout=0.25, keep_graphs=keep_graphs).train()
    ref = copy.deepcopy(rev)
    ref.memory_efficient = False
    x1, x2 = _x(4), _x(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GraphMismatchWarning)
        y1 = _run(rev, x1, seed=7)
    y2 = _run(ref, x2, seed=7)
    assert torch.equal(y1, y2)  # same ops, same graphs, same mask
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-10)
    _assert_same_grads(rev, ref)
    # BatchNorm running statistics: updated once per step (by the forward), not by the recompute
    for (name, b1), (_, b2) in zip(rev.named_buffers(), ref.named_buffers(), strict=True):
        assert torch.equal(b1, b2), name
        if name.endswith("num_batches_tracked"):
            assert int(b1) == 1, name
    assert rev.graph_mismatches == 0


def test_gradients_equal_with_three_groups_and_float32():
    torch.set_default_dtype(torch.float32)
    rev = _stack(layers=3, groups=2, stochastic=True, epsilon=0.5).train()
    ref = copy.deepcopy(rev)
    ref.memory_efficient = False
    x1, x2 = _x(5).float(), _x(5).float()
    x1, x2 = x1.detach().requires_grad_(), x2.detach().requires_grad_()
    _run(rev, x1, seed=9)
    _run(ref, x2, seed=9)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)
    _assert_same_grads(rev, ref, tol=1e-4)


def test_backward_rebuilds_exactly_the_forward_graphs_including_stochastic_dilation(monkeypatch):
    rev = _stack(layers=3, stochastic=True, epsilon=1.0).train()  # every d > 1 graph is random
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    build = rev.build_graph

    def spy(h, ranks):
        idx = build(h, ranks)
        calls.append((ranks.clone(), idx.clone()))
        return idx

    monkeypatch.setattr(rev, "build_graph", spy)
    _run(rev, _x(6), seed=11)
    L, G = rev.num_layers, rev.groups
    assert len(calls) == 2 * L * G
    fwd = {(lay, g): calls[lay * G + g] for lay in range(L) for g in range(G)}
    # backward: last layer first, groups G..1 within a layer
    order = [(lay, g) for lay in reversed(range(L)) for g in reversed(range(G))]
    bwd = dict(zip(order, calls[L * G :], strict=True))
    random_ranks = 0
    for key in fwd:
        assert torch.equal(fwd[key][0], bwd[key][0]), key  # the same choices, replayed
        assert torch.equal(fwd[key][1], bwd[key][1]), key  # and the same neighbours
        d = rev.dilations[key[0]]
        random_ranks += not torch.equal(fwd[key][0], torch.arange(0, K * d, d))
    assert random_ranks > 0  # stochastic dilation really fired


def test_keep_graphs_never_rebuilds_in_backward(monkeypatch):
    rev = _stack(layers=3, keep_graphs=True).train()
    calls = []
    build = rev.build_graph
    monkeypatch.setattr(rev, "build_graph", lambda h, r: calls.append(1) or build(h, r))
    _run(rev, _x(7), seed=1)
    assert len(calls) == rev.num_layers * rev.groups  # forward only


# ------------------------------------------------------------------------ flip detection


def _perturbed_backward(rev: RevGCN) -> None:
    """Forward, then change the weights before backward: the reconstruction of the last block's
    input (so X'_0 and its kNN graph) departs from the forward, as float drift would."""
    torch.manual_seed(0)
    y = rev(_x(8))
    with torch.no_grad():
        for p in rev.blocks[-1].fns[1].parameters():
            p.add_(torch.randn_like(p))
    y.sum().backward()


def test_a_flipped_neighbour_in_backward_is_detected():
    rev = _stack(layers=2).train()
    with pytest.warns(
        GraphMismatchWarning, match=r"of 4 kNN graphs rebuilt in backward .*layer 1 group 1"
    ):
        _perturbed_backward(rev)
    assert rev.graph_mismatches >= 1 and (1, 0) in rev.last_mismatches
    strict = _stack(layers=2, on_mismatch="raise").train()
    with pytest.raises(GraphMismatchError, match="keep_graphs=True"):
        _perturbed_backward(strict)
    # control: the same run without the perturbation raises nothing
    clean = _stack(layers=2, on_mismatch="raise").train()
    torch.manual_seed(0)
    clean(_x(8)).sum().backward()
    assert clean.graph_mismatches == 0


def test_graph_checksum_sees_one_changed_or_swapped_index():
    idx = torch.randint(0, 100, (2, 30, 4))
    base = graph_checksum(idx)
    changed = idx.clone()
    changed[1, 7, 2] += 1
    swapped = idx.clone()
    swapped[0, 3, [0, 1]] = idx[0, 3, [1, 0]]
    assert graph_checksum(changed) != base
    assert idx[0, 3, 0] == idx[0, 3, 1] or graph_checksum(swapped) != base
    assert graph_checksum(idx.clone()) == base


# ---------------------------------------------------------------------------- sparse graphs


def _sparse_graph(n: int = 30, e: int = 120, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (2, e), generator=g)


@pytest.mark.parametrize("conv_name", ["GraphConv", "SAGEConv"])
def test_sparse_pyg_convs_gradients_equal_ordinary_and_pyg_group_add_rev(conv_name):
    pyg = pytest.importorskip("torch_geometric.nn")
    conv_cls = getattr(pyg, conv_name)
    torch.manual_seed(2)
    c = C // 2
    blocks = [
        GroupRevBlock([RevGraphFn(conv_cls(c, c), nn.LayerNorm(c), nn.ReLU()) for _ in range(2)])
        for _ in range(3)
    ]
    rev = RevGCN(blocks, dropout=0.3).train()
    ref = copy.deepcopy(rev)
    ref.memory_efficient = False
    edge_index = _sparse_graph()
    x1 = torch.randn(30, C, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    y1 = _run(rev, x1, 3, edge_index)
    y2 = _run(ref, x2, 3, edge_index)
    assert torch.equal(y1, y2)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-10)
    _assert_same_grads(rev, ref)

    # PyG's own GroupAddRev (plain autograd) with the same group functions, graph and mask
    torch.manual_seed(3)
    mask = rev.make_mask(x1)  # the mask our forward drew with this seed
    h = x1.detach()
    for b in blocks:
        wrapped = nn.ModuleList([_PygFn(f) for f in b.fns])
        h = pyg.GroupAddRev(wrapped, disable=True)(h, edge_index, mask)
    torch.testing.assert_close(h, y1, rtol=1e-12, atol=1e-12)


class _PygFn(nn.Module):
    def __init__(self, fn: RevGraphFn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x, edge_index, mask):
        return self.fn(x, edge_index, mask)


# ----------------------------------------------------------------------------- weight tying


def test_weight_tied_parameter_count_is_independent_of_depth_and_gradients_match():
    torch.manual_seed(4)
    counts = []
    for layers in (2, 5, 11):
        tied = RevGCN(_block(), num_layers=layers, k=K, dilations=[1] * layers)
        counts.append(sum(p.numel() for p in tied.parameters()))
        assert tied.weight_tied and len(tied.state_dict()) == len(_block().state_dict())
    assert counts[0] == counts[1] == counts[2]
    tied = RevGCN(_block(), num_layers=4, k=K, dilations=[1, 2, 1, 2]).train()
    ref = copy.deepcopy(tied)
    ref.memory_efficient = False
    x1, x2 = _x(9), _x(9)
    _run(tied, x1, 5)
    _run(ref, x2, 5)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-10)
    _assert_same_grads(tied, ref)  # the sum over the 4 layers that share the weights


def test_eval_returns_graphs_and_static_stack_needs_a_graph():
    rev = _stack(layers=2).eval()
    with torch.no_grad():
        y, graphs = rev(_x(1, False), return_graphs=True)
    assert y.shape == (B, N, C)
    assert len(graphs) == 2 and all(g.shape == (B, N, K) for layer in graphs for g in layer)
    static = RevGCN([_block()])
    with pytest.raises(ValueError, match="needs a graph"):
        static(_x(1))
    with pytest.raises(ValueError, match="do not pass a graph"):
        rev(_x(1), torch.zeros(B, N, K, dtype=torch.long))


def test_float32_kept_graphs_match_ordinary_gradients_where_rebuilt_graphs_flip():
    # 512 points in float32: reconstructions drift by rounding, rebuilt graphs flip neighbours
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(6)
    layers = 6
    blocks = [_block() for _ in range(layers)]
    x = torch.randn(1, 512, C)

    def grads(**kw):
        stack = RevGCN(copy.deepcopy(blocks), k=8, dilations=[2] * layers, **kw).train()
        xi = x.clone().requires_grad_(True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GraphMismatchWarning)
            _run(stack, xi, 1)
        return xi.grad, stack.graph_mismatches

    ref, _ = grads(memory_efficient=False)
    kept, flips_kept = grads(keep_graphs=True)
    rebuilt, flips = grads(keep_graphs=False)

    def off(g):  # fraction of input-gradient entries away from the ordinary computation
        return float((~torch.isclose(g, ref, rtol=1e-3, atol=1e-4)).float().mean())

    # kept graphs: float rounding only; a neighbour max at a near tie can still route a few
    # entries' gradient differently (max is not differentiable at ties)
    print(
        f"float32, 512 points: kept graphs {off(kept):.2%} of dx off; rebuilt {flips} of "
        f"{layers * 2} graphs flipped, {off(rebuilt):.2%} of dx off"
    )
    assert flips_kept == 0 and off(kept) < 0.01
    if flips:  # the warning's claim: a flipped graph corrupts the reconstruction below it
        assert off(rebuilt) > off(kept)


# ------------------------------------------------------------------ parameter-gradient delivery


@pytest.mark.parametrize("tied", [False, True])
def test_accumulated_grads_equal_returned_grads_and_add_to_existing_grads(tied):
    # accumulate_grads (default) adds each block's gradients to p.grad inside the backward;
    # accumulate_grads=False returns them through autograd. Same numbers, also on top of an
    # existing .grad (two backward passes = gradient accumulation). Weight-tied stacks always
    # return their gradients (each parameter gets one per backward, as DDP requires).
    if tied:
        torch.manual_seed(0)
        acc = RevGCN(_block(pre_act=True), num_layers=4, k=K, dilations=[1, 2, 1, 3])
    else:
        acc = _stack(stochastic=True, epsilon=0.5, dropout=0.25)
    acc.train()
    ret = copy.deepcopy(acc)
    ret.accumulate_grads = False
    ref = copy.deepcopy(acc)  # ordinary autograd, from the same initial state
    ref.memory_efficient = False
    assert acc.accumulating is not tied and not ret.accumulating
    for seed in (3, 4):  # the second pass accumulates into the first one's .grad
        x1, x2 = _x(seed), _x(seed)
        _run(acc, x1, seed=seed)
        _run(ret, x2, seed=seed)
        torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-10)
        _assert_same_grads(acc, ret)
    # and both equal ordinary autograd's two-pass sum
    for seed in (3, 4):
        _run(ref, _x(seed), seed=seed)
    _assert_same_grads(acc, ref)


def test_each_block_gradients_reach_p_grad_before_the_next_block_is_recomputed():
    # No depth-sized buffer of gradients: when the backward recomputes block 0 (the last one it
    # visits), the gradients of block L−1 are already in p.grad. With accumulate_grads=False they
    # only arrive after the whole stack's backward (all L layers' gradients alive at once).
    seen = {}
    for accumulate in (True, False):
        rev = _stack(layers=4, accumulate_grads=accumulate).train()
        last = list(rev.blocks[-1].parameters())

        def hook(module, args, _acc=accumulate, _last=last):
            if torch.is_grad_enabled():  # the recompute (the forward runs under no_grad)
                seen[_acc] = all(p.grad is not None for p in _last)

        rev.blocks[0].fns[0].register_forward_pre_hook(hook)
        _run(rev, _x(1), seed=2)
    assert seen == {True: True, False: False}


def test_returned_grads_work_with_torch_autograd_grad_and_accumulated_do_not_pretend_to():
    ret = _stack(layers=3, accumulate_grads=False).train()
    params = list(ret.parameters())
    torch.manual_seed(1)
    g = torch.autograd.grad(ret(_x(2)).square().sum(), params)
    assert all(t is not None for t in g) and all(p.grad is None for p in params)
    acc = copy.deepcopy(ret)
    acc.accumulate_grads = True
    torch.manual_seed(1)
    with pytest.raises(RuntimeError, match="not have been used"):
        torch.autograd.grad(acc(_x(2)).square().sum(), list(acc.parameters()))


def test_parameters_get_gradients_when_the_input_needs_none():
    # accumulate_grads: the parameters are not inputs of the autograd node; an empty anchor makes
    # the output require grad anyway, and the gradients equal ordinary autograd's
    rev = _stack(layers=3, stochastic=True, epsilon=0.5).train()
    ref = copy.deepcopy(rev)
    ref.memory_efficient = False
    _run(rev, _x(6, requires_grad=False), seed=1)
    _run(ref, _x(6, requires_grad=False), seed=1)
    _assert_same_grads(rev, ref)
