"""EdgeConv: fused path == textbook reference (outputs, gradients, BN running stats), memory of the
fused path, and fidelity to the original deep_gcns_torch ResGCN-28 layers (real fixture)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from pointseg.nn.edge_conv import EdgeConv, edge_conv_reference, neighbor_max

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
REFERENCE = DATA / "reference"


def _graph(b: int, n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    idx = torch.randint(0, n, (b, n, k), generator=gen)
    idx[..., 0] = torch.arange(n)  # self at rank 0, as kNN graphs have
    return idx


def _randomise_bn(conv: EdgeConv, gen: torch.Generator, gamma: str) -> None:
    out = conv.out_channels
    with torch.no_grad():
        w = torch.rand(out, generator=gen, dtype=torch.float64) + 0.5
        if gamma == "mixed":
            w[::2] *= -1  # negative BN scales: max over neighbours must become min
        elif gamma == "negative":
            w *= -1
        conv.norm.weight.copy_(w)
        conv.norm.bias.copy_(torch.randn(out, generator=gen, dtype=torch.float64))
        conv.norm.running_mean.copy_(torch.randn(out, generator=gen, dtype=torch.float64))
        conv.norm.running_var.copy_(torch.rand(out, generator=gen, dtype=torch.float64) + 0.5)
        conv.norm.num_batches_tracked.fill_(3)


def _run_pair(fused: EdgeConv, ref: EdgeConv, x: torch.Tensor, idx: torch.Tensor, steps: int = 1):
    """Forward+backward both modules `steps` times; return (outs, x grads) of the last step."""
    for _ in range(steps):
        xa = x.clone().requires_grad_(True)
        xb = x.clone().requires_grad_(True)
        ya, yb = fused(xa, idx), ref(xb, idx)
        weight = torch.linspace(-1, 2, ya.numel(), dtype=ya.dtype).view_as(ya)
        (ya * weight).sum().backward()
        (yb * weight).sum().backward()
    return (ya, yb), (xa.grad, xb.grad)


def _close(a: torch.Tensor, b: torch.Tensor, tol: float, what: str, scale: float = 1.0) -> None:
    """max |a − b| <= tol · max(scale, max |b|): absolute for O(1) tensors, relative to the scale of
    large ones (a weight gradient summed over thousands of edges is O(100) in float32)."""
    err, scale = (a - b).abs().max().item(), max(scale, b.abs().max().item())
    assert err <= tol * scale, f"{what}: max abs diff {err:.3g} > {tol:g} * {scale:.3g}"


def _assert_same(fused: EdgeConv, ref: EdgeConv, outs, grads, tol: float) -> None:
    _close(outs[0], outs[1], tol, "output")
    _close(grads[0], grads[1], tol, "grad x")
    for (name, pa), (_, pb) in zip(fused.named_parameters(), ref.named_parameters(), strict=True):
        assert pa.grad is not None and pb.grad is not None, name
        # The bias gradient is a cancelling sum of edge terms as large as the weight gradient's
        # (exactly 0 for conv_norm_act in training: BN removes any bias), so use that scale.
        scale = ref.lin.weight.grad.abs().max().item() if name == "lin.bias" else 1.0
        _close(pa.grad, pb.grad, tol, f"grad {name}", scale)
    for (name, ba), (_, bb) in zip(fused.named_buffers(), ref.named_buffers(), strict=True):
        _close(ba.double(), bb.double(), tol, f"buffer {name}")


@pytest.mark.parametrize("order", ["conv_act_norm", "conv_norm_act"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("gamma", ["mixed", "positive", "negative"])
@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_fused_matches_reference_float64(order, training, gamma, act):
    gen = torch.Generator().manual_seed(hash((order, training, gamma, act)) % 2**31)
    b, n, c, out, k = 2, 48, 12, 16, 6
    fused = EdgeConv(c, out, order=order, act=act).double()
    _randomise_bn(fused, gen, gamma)
    ref = copy.deepcopy(fused)
    ref.fused = False
    fused.train(training)
    ref.train(training)
    x = torch.randn(b, n, c, generator=gen, dtype=torch.float64)
    outs, grads = _run_pair(fused, ref, x, _graph(b, n, k, gen), steps=2)
    _assert_same(fused, ref, outs, grads, tol=1e-10)
    if training:
        assert int(fused.norm.num_batches_tracked) == 5  # 3 + 2 steps, like nn.BatchNorm1d


@pytest.mark.parametrize("order", ["conv_act_norm", "conv_norm_act"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(2, 32, 8, 8, 4), (2, 64, 16, 16, 8), (1, 40, 9, 16, 5)])
def test_fused_matches_reference_float32(order, training, shape):
    """The float32 model as trained: outputs, gradients and running stats agree to 1e-5."""
    b, n, c, out, k = shape
    gen = torch.Generator().manual_seed(n * 7 + c)
    fused = EdgeConv(c, out, order=order)
    _randomise_bn(fused, gen, "mixed")
    ref = copy.deepcopy(fused)
    ref.fused = False
    fused.train(training)
    ref.train(training)
    x = torch.randn(b, n, c, generator=gen)
    idx = _graph(b, n, k, gen)
    truth = copy.deepcopy(ref).double()
    outs, grads = _run_pair(fused, ref, x, idx)
    _assert_same(fused, ref, outs, grads, tol=1e-5)
    # And the fused float32 path is about as accurate as the reference, measured against float64.
    (y64, _), (g64, _) = _run_pair(truth, copy.deepcopy(truth), x.double(), idx)
    err_fused = (outs[0].double() - y64).abs().max() + (grads[0].double() - g64).abs().max()
    err_ref = (outs[1].double() - y64).abs().max() + (grads[1].double() - g64).abs().max()
    assert err_fused <= 4 * err_ref + 1e-6, (err_fused, err_ref)


@pytest.mark.parametrize("act", ["relu", "none", "elu", "gelu", "tanh"])
@pytest.mark.parametrize("norm", [None, "batch"])
@pytest.mark.parametrize("order", ["conv_act_norm", "conv_norm_act"])
def test_other_acts_and_no_norm_match_reference(act, norm, order):
    """Monotone acts use the fused path, the others fall back; both must equal the reference."""
    gen = torch.Generator().manual_seed(5)
    fused = EdgeConv(8, 12, order=order, norm=norm, act=act).double()
    if norm is not None:
        _randomise_bn(fused, gen, "mixed")
    ref = copy.deepcopy(fused)
    ref.fused = False
    x = torch.randn(2, 32, 8, generator=gen, dtype=torch.float64)
    outs, grads = _run_pair(fused, ref, x, _graph(2, 32, 5, gen))
    _assert_same(fused, ref, outs, grads, tol=1e-10)


def test_momentum_none_cumulative_average_matches_batchnorm():
    gen = torch.Generator().manual_seed(11)
    fused = EdgeConv(8, 8, order="conv_act_norm").double()
    fused.norm.momentum = None
    ref = copy.deepcopy(fused)
    ref.fused = False
    idx = _graph(2, 32, 4, gen)
    for _ in range(3):
        x = torch.randn(2, 32, 8, generator=gen, dtype=torch.float64)
        fused(x, idx)
        ref(x, idx)
    torch.testing.assert_close(fused.norm.running_mean, ref.norm.running_mean)
    torch.testing.assert_close(fused.norm.running_var, ref.norm.running_var)
    assert not torch.allclose(fused.norm.running_var, torch.ones(8, dtype=torch.float64))


def test_reference_function_is_the_textbook_formula():
    """edge_conv_reference == an explicit loop over points and neighbours (no norm)."""
    gen = torch.Generator().manual_seed(2)
    conv = EdgeConv(4, 6, norm=None, act="relu").double()
    x = torch.randn(1, 10, 4, generator=gen, dtype=torch.float64)
    idx = _graph(1, 10, 3, gen)
    got = edge_conv_reference(x, idx, conv.lin, None, conv.act)
    want = torch.empty(1, 10, 6, dtype=torch.float64)
    for i in range(10):
        feats = [torch.cat([x[0, i], x[0, j] - x[0, i]]) for j in idx[0, i].tolist()]
        want[0, i] = torch.stack([torch.relu(conv.lin(f)) for f in feats]).max(0).values
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(conv(x, idx), want)


def test_fused_training_saves_no_edge_sized_tensor():
    """Autograd of the fused layer keeps only per-point tensors: nothing with N·k·C elements."""
    b, n, c, k = 2, 128, 16, 16
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(b, n, c, generator=gen, requires_grad=True)
    idx = _graph(b, n, k, gen)
    for order in ("conv_act_norm", "conv_norm_act"):
        for fused in (True, False):
            conv = EdgeConv(c, c, order=order, fused=fused)
            saved: list[int] = []

            def pack(t: torch.Tensor, saved=saved) -> torch.Tensor:
                saved.append(t.numel())
                return t

            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                conv(x, idx).sum().backward()
            edge_numel = b * n * k * c
            if fused:
                assert max(saved) < edge_numel, (order, max(saved))
                # Only x (shared with the previous layer), the flat index and per-channel vectors.
                assert sum(saved) <= b * n * c + b * n * k + 8 * c * c, (order, sum(saved))
            else:  # the reference keeps several edge tensors: this check would catch a regression
                assert max(saved) >= edge_numel


def test_neighbor_max_and_gradient():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 12, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    idx = _graph(2, 12, 4, gen)
    got = neighbor_max(x, idx)
    want = torch.stack([x[b][idx[b]].max(1).values for b in range(2)])
    torch.testing.assert_close(got, want)
    assert torch.autograd.gradcheck(lambda t: neighbor_max(t, idx), (x,))


def test_bad_inputs_raise_clear_errors():
    conv = EdgeConv(4, 8)
    x = torch.randn(2, 10, 4)
    idx = torch.zeros(2, 10, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"x must be \(B, N, 4\)"):
        conv(torch.randn(2, 10, 5), idx)
    with pytest.raises(ValueError, match="idx must be"):
        conv(x, idx[:, :5])
    with pytest.raises(ValueError, match="int64"):
        conv(x, idx.int())
    with pytest.raises(ValueError, match=r"\[0, N=10\)"):
        conv(x, idx + 10)
    with pytest.raises(ValueError, match="unknown layer order"):
        EdgeConv(4, 8, order="act_conv")


def test_parameter_names_and_repr():
    conv = EdgeConv(9, 64)
    names = {k: tuple(v.shape) for k, v in conv.state_dict().items()}
    assert names["lin.weight"] == (64, 18)
    assert {"norm.weight", "norm.running_var", "norm.num_batches_tracked"} <= set(names)
    assert isinstance(conv.norm, torch.nn.BatchNorm1d)
    assert "\n" not in repr(conv) and "fused=True" in repr(conv)
    assert EdgeConv(4, 4, norm=None, bias=False).lin.bias is not None  # no norm: bias on


def _load_original_layer(state: dict, prefix: str, in_channels: int) -> EdgeConv:
    conv = EdgeConv(in_channels, 64, order="conv_act_norm")
    conv.load_state_dict(
        {
            "lin.weight": state[f"{prefix}.nn.0.weight"][:, :, 0, 0],
            "lin.bias": state[f"{prefix}.nn.0.bias"],
            **{f"norm.{k}": state[f"{prefix}.nn.2.{k}"] for k in conv.norm.state_dict()},
        }
    )
    return conv.eval()


def test_matches_original_resgcn28_layers():
    """Every EdgeConv of the original ResGCN-28 (eval, Conv→ReLU→BN) reproduced with its saved graph."""
    ckpt, layers = (
        REFERENCE / "resgcn28_original_format.pth",
        REFERENCE / "resgcn28_original_layers.npz",
    )
    if not (ckpt.exists() and layers.exists()):
        pytest.skip(f"reference fixture not found in {REFERENCE}")
    state = torch.load(ckpt, weights_only=True, map_location="cpu")["state_dict"]
    data = np.load(layers)
    neighbours = torch.from_numpy(data["neighbours"].astype(np.int64))  # (28, B, N, k)
    outputs = torch.from_numpy(data["layer_outputs"]).transpose(2, 3)  # (28, B, N, 64)
    inputs = torch.from_numpy(data["layer_inputs"]).transpose(2, 3)  # (27, B, N, 64)
    with torch.no_grad():
        head = _load_original_layer(state, "head.gconv", 9)
        x = torch.from_numpy(data["x"])
        torch.testing.assert_close(head(x, neighbours[0]), outputs[0], atol=1e-4, rtol=1e-4)
        for i in range(1, 28):
            conv = _load_original_layer(state, f"backbone.{i - 1}.body.gconv", 64)
            h = inputs[i - 1]
            for fused in (True, False) if i in (1, 27) else (True,):
                conv.fused = fused
                got = conv(h, neighbours[i]) + h  # ResGCN: conv(h) + h
                torch.testing.assert_close(got, outputs[i], atol=1e-4, rtol=1e-4, msg=f"block {i}")


@pytest.mark.parametrize("variant", ["no_affine", "no_running_stats"])
@pytest.mark.parametrize("order", ["conv_act_norm", "conv_norm_act"])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_variants_match_reference(variant, order, training):
    """BN without affine parameters, or without running stats (batch stats in eval too)."""
    from pointseg.nn.mlp import PointBatchNorm

    gen = torch.Generator().manual_seed(13)
    fused = EdgeConv(8, 12, order=order).double()
    if variant == "no_affine":
        fused.norm = PointBatchNorm(12, affine=False).double()
    else:
        fused.norm = PointBatchNorm(12, track_running_stats=False).double()
    ref = copy.deepcopy(fused)
    ref.fused = False
    fused.train(training)
    ref.train(training)
    x = torch.randn(2, 32, 8, generator=gen, dtype=torch.float64)
    outs, grads = _run_pair(fused, ref, x, _graph(2, 32, 5, gen))
    _assert_same(fused, ref, outs, grads, tol=1e-10)


def test_duplicated_points_same_parameter_gradients():
    """Blocks repeat points when short: ties in the max must not change parameter gradients."""
    gen = torch.Generator().manual_seed(17)
    x = torch.randn(1, 24, 6, generator=gen, dtype=torch.float64)
    x[0, 12:] = x[0, :12]  # every point twice
    idx = _graph(1, 24, 6, gen)
    idx[0, :12, 1] = torch.arange(12, 24)  # each point sees its duplicate
    fused = EdgeConv(6, 8).double()
    ref = copy.deepcopy(fused)
    ref.fused = False
    outs, grads = _run_pair(fused, ref, x, idx)
    _close(outs[0], outs[1], 1e-10, "output")
    for (name, pa), (_, pb) in zip(fused.named_parameters(), ref.named_parameters(), strict=True):
        _close(pa.grad, pb.grad, 1e-10, f"grad {name}")
    # Input gradients may split between the two copies, but their sum per pair must agree.
    _close(grads[0][0, :12] + grads[0][0, 12:], grads[1][0, :12] + grads[1][0, 12:], 1e-10, "pairs")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("order", ["conv_act_norm", "conv_norm_act"])
def test_many_chunks_and_workers_match_reference(monkeypatch, threads, order):
    """Tiny chunks (many of them) dealt to 1 or 2 workers: same results as the reference."""
    import pointseg.nn.edge_extreme as edge_extreme

    monkeypatch.setattr(edge_extreme, "_CHUNK_ELEMENTS", 7 * 6 * 12)  # 7 rows per chunk
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(19)
        fused = EdgeConv(8, 12, order=order).double()
        _randomise_bn(fused, gen, "mixed")
        ref = copy.deepcopy(fused)
        ref.fused = False
        x = torch.randn(2, 40, 8, generator=gen, dtype=torch.float64)
        outs, grads = _run_pair(fused, ref, x, _graph(2, 40, 6, gen), steps=2)
        _assert_same(fused, ref, outs, grads, tol=1e-10)
        assert torch.get_num_threads() == threads  # restored after the layer ran single-threaded
    finally:
        torch.set_num_threads(previous)
