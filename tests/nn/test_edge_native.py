"""Compiled EdgeConv neighbour pass (pointseg/_native/edge.c) == the torch body it replaces.

Every combination of statistics (none / identity / (leaky) ReLU), BN-scale signs, exact ties
(repeated neighbour indices, equal feature values), k and chunkings; a float64 autograd check of
the kernel's math; the fallbacks (POINTSEG_NO_NATIVE, float64, non-contiguous inputs) and clear
errors for bad buffers.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from pointseg.nn import edge_extreme
from pointseg.nn.edge_conv import EdgeConv, edge_extreme_stats
from pointseg.nn.edge_extreme import extreme_stats_backward, extreme_stats_forward


@pytest.fixture(autouse=True)
def _native_built() -> None:
    """Skip only without a C compiler; a compiler and no extension means a stale install."""
    if edge_extreme._native_edge is None:
        if shutil.which("cc") is None:
            pytest.skip("no C compiler: the compiled EdgeConv kernel cannot be built")
        pytest.fail(
            "pointseg._native._edge is not built although a C compiler exists: run "
            "`pip install -e .` (or `python setup.py build_ext --inplace`)"
        )


@contextlib.contextmanager
def _native(on: bool) -> Iterator[None]:
    """Select the compiled kernel (on) or the torch body (off) through POINTSEG_NO_NATIVE."""
    old = os.environ.get("POINTSEG_NO_NATIVE")
    if on:
        os.environ.pop("POINTSEG_NO_NATIVE", None)
    else:
        os.environ["POINTSEG_NO_NATIVE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("POINTSEG_NO_NATIVE", None)
        else:
            os.environ["POINTSEG_NO_NATIVE"] = old


def _inputs(rows: int, c: int, k: int, ties: bool, sgn: str, seed: int = 0):
    """a, p (rows, c) float32, fidx (rows, k), sgn (c,) | None; with ties, p takes few distinct
    values and fidx repeats neighbours, so the extreme is attained several times."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(rows, c, generator=gen)
    if ties:
        p = torch.randint(-2, 3, (rows, c), generator=gen).float() * 0.5
        fidx = torch.randint(0, rows, (rows, k), generator=gen)
        if k > 1:
            fidx[:, 1] = fidx[:, 0]  # the same neighbour twice: counts twice, like the reference
    else:
        p = torch.randn(rows, c, generator=gen)
        fidx = torch.randint(0, rows, (rows, k), generator=gen)
    fidx[:, 0] = torch.arange(rows)  # self at rank 0, as kNN graphs have
    signs = {
        "none": None,
        "pos": torch.ones(c),
        "neg": -torch.ones(c),
        "mixed": torch.where(torch.arange(c) % 3 == 0, -1.0, 1.0),
    }[sgn]
    return a, p, fidx, signs


def _close(x: torch.Tensor, y: torch.Tensor, what: str, rtol: float = 1e-5) -> None:
    """|x − y| <= rtol · max(1, max |y|) elementwise (sums of O(1) terms cancel)."""
    scale = max(1.0, y.abs().max().item())
    err = (x - y).abs().max().item()
    assert err <= rtol * scale, f"{what}: max abs diff {err:.3g} > {rtol:g} * {scale:.3g}"


def _both(fn, *args):
    """fn(*args) with the kernel, then with the torch body."""
    with _native(True):
        got = fn(*args)
    with _native(False):
        want = fn(*args)
    return got, want


CASES = [
    (stats, slope, sgn, k, ties)
    for stats, sgn, k, ties in itertools.product(
        (0, 1, 2), ("none", "pos", "neg", "mixed"), (1, 16), (False, True)
    )
    for slope in ((0.0, 0.2) if stats == 2 else (0.0,))
]


@pytest.mark.parametrize("stats,slope,sgn,k,ties", CASES)
def test_native_matches_torch_body(monkeypatch, stats, slope, sgn, k, ties):
    rows, c = 96, 12
    a, p, fidx, signs = _inputs(rows, c, k, ties, sgn, seed=stats * 100 + k)
    gen = torch.Generator().manual_seed(7)
    g_ext = torch.randn(rows, c, generator=gen)
    g_mean, g_var = torch.randn(c, generator=gen), torch.randn(c, generator=gen)
    # chunk sizes: one chunk, uneven chunks over 2 and 3 workers, one row per chunk
    for elements, workers in ((1 << 20, 1), (7 * k * c, 2), (5 * k * c, 3), (1, 2)):
        monkeypatch.setattr(edge_extreme, "_CHUNK_ELEMENTS", elements)
        (ext, mean, var), (ext_t, mean_t, var_t) = _both(
            extreme_stats_forward, a, p, fidx, signs, stats, slope, workers
        )
        assert torch.equal(ext, ext_t), "ext must be bit-identical"
        if stats:
            _close(mean, mean_t, "mean")
            _close(var, var_t, "var")
        else:
            assert mean is None and var is None
        (ga, gp), (ga_t, gp_t) = _both(
            extreme_stats_backward,
            a,
            p,
            fidx,
            ext_t,
            mean_t,
            g_ext,
            g_mean if stats else None,
            g_var if stats else None,
            stats,
            slope,
            workers,
        )
        _close(gp, gp_t, f"grad_p ({elements}, {workers})")
        if stats:
            _close(ga, ga_t, f"grad_a ({elements}, {workers})")
        else:
            assert ga is None and ga_t is None


@pytest.mark.parametrize("which", ["ext only", "mean only", "var only", "stats only"])
def test_native_backward_partial_gradients(which):
    """Any subset of (g_ext, g_mean, g_var) may be None, as autograd passes them."""
    rows, c, k = 64, 8, 16
    a, p, fidx, signs = _inputs(rows, c, k, True, "mixed", seed=3)
    ext, mean, _ = extreme_stats_forward(a, p, fidx, signs, 2, 0.1)
    gen = torch.Generator().manual_seed(1)
    g_ext = None if which in ("mean only", "var only", "stats only") else torch.randn(rows, c)
    g_mean = torch.randn(c, generator=gen) if which in ("mean only", "stats only") else None
    g_var = torch.randn(c, generator=gen) if which in ("var only", "stats only") else None
    (ga, gp), (ga_t, gp_t) = _both(
        extreme_stats_backward, a, p, fidx, ext, mean, g_ext, g_mean, g_var, 2, 0.1, 2
    )
    _close(gp, gp_t, "grad_p")
    if which == "ext only":
        assert ga is None and ga_t is None
    else:
        _close(ga, ga_t, "grad_a")
    assert gp.abs().sum() > 0


@pytest.mark.parametrize("stats,slope", [(0, 0.0), (1, 0.0), (2, 0.0), (2, 0.2), (2, -0.5)])
def test_native_matches_float64_autograd(stats, slope):
    """The kernel's results against the textbook math in float64: gather → amax (its backward
    splits ties evenly) → f → mean / biased var, differentiated by autograd."""
    rows, c, k = 80, 10, 16
    a, p, fidx, signs = _inputs(rows, c, k, True, "mixed", seed=11)
    a64, p64 = a.double().requires_grad_(True), p.double().requires_grad_(True)
    g = p64[fidx.reshape(-1)].view(rows, k, c)  # (R, k, C)
    ext64 = torch.where(signs > 0, g.amax(1), g.amin(1))
    z = a64.unsqueeze(1) + g
    if stats == 2:
        z = torch.where(z > 0, z, z * slope)
    mean64, var64 = z.mean((0, 1)), z.var((0, 1), unbiased=False)
    gen = torch.Generator().manual_seed(5)
    g_ext = torch.randn(rows, c, generator=gen)
    g_mean, g_var = torch.randn(c, generator=gen), torch.randn(c, generator=gen)
    loss = (ext64 * g_ext.double()).sum()
    if stats:
        loss = loss + (mean64 * g_mean.double()).sum() + (var64 * g_var.double()).sum()
    loss.backward()

    with _native(True):
        ext, mean, var = extreme_stats_forward(a, p, fidx, signs, stats, slope, 2)
        ga, gp = extreme_stats_backward(
            a,
            p,
            fidx,
            ext,
            mean,
            g_ext,
            g_mean if stats else None,
            g_var if stats else None,
            stats,
            slope,
            2,
        )
    assert torch.equal(ext.double(), ext64.detach())
    _close(gp.double(), p64.grad, "grad_p", 1e-5)
    if stats:
        _close(mean.double(), mean64.detach(), "mean", 1e-6)
        _close(var.double(), var64.detach(), "var", 1e-6)
        _close(ga.double(), a64.grad, "grad_a", 1e-5)
    else:
        assert ga is None and a64.grad is None  # ext does not depend on a


@pytest.mark.parametrize("order", ["conv_act_norm", "conv_norm_act"])
@pytest.mark.parametrize("act", ["relu", "leaky_relu", "none"])
def test_edge_conv_layer_native_equals_torch(order, act):
    """The whole fused layer (forward, backward, running stats) with and without the kernel."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 128, 6, generator=gen)
    idx = torch.randint(0, 128, (2, 128, 16), generator=gen)
    results = []
    for on in (True, False):
        torch.manual_seed(0)
        conv = EdgeConv(6, 16, order=order, act=act).train()
        with torch.no_grad():
            conv.norm.weight[::2] *= -1  # negative BN scales: min over neighbours
        xr = x.clone().requires_grad_(True)
        with _native(on):
            y = conv(xr, idx)
            (y * torch.linspace(-1, 2, y.numel()).view_as(y)).sum().backward()
        grads = [xr.grad] + [q.grad for q in conv.parameters()]
        results.append((y.detach(), grads, conv.norm.running_mean, conv.norm.running_var))
    (y, grads, rm, rv), (y_t, grads_t, rm_t, rv_t) = results
    _close(y, y_t, "output")
    _close(rm, rm_t, "running_mean")
    _close(rv, rv_t, "running_var")
    for i, (g, g_t) in enumerate(zip(grads, grads_t, strict=True)):
        _close(g, g_t, f"gradient {i}", 1e-4)


def test_nan_propagates_like_torch():
    rows, c, k = 32, 8, 4
    a, p, fidx, signs = _inputs(rows, c, k, False, "mixed", seed=4)
    p[5, 3] = float("nan")
    a[7, 2] = float("nan")
    (ext, mean, var), (ext_t, mean_t, var_t) = _both(
        extreme_stats_forward, a, p, fidx, signs, 2, 0.0, 1
    )
    assert torch.equal(ext.isnan(), ext_t.isnan()) and ext.isnan().any()
    assert torch.equal(ext.nan_to_num(), ext_t.nan_to_num())
    assert torch.equal(mean.isnan(), mean_t.isnan()) and mean.isnan().any()
    assert torch.equal(var.isnan(), var_t.isnan())


def test_fallback_for_float64_and_non_contiguous(monkeypatch):
    """float64 runs the torch body (the kernel is never called); non-contiguous float32 inputs are
    copied for the kernel and give the same results as the torch body."""
    rows, c, k = 48, 8, 8
    a, p, fidx, signs = _inputs(rows, c, k, True, "mixed", seed=9)
    want = extreme_stats_forward(a.double(), p.double(), fidx, signs.double(), 1, 0.0)

    class _Forbidden:
        def __getattr__(self, name):
            raise AssertionError("the kernel must not be called for float64 inputs")

    with monkeypatch.context() as m:
        m.setattr(edge_extreme, "_native_edge", _Forbidden())
        with _native(True):
            got = extreme_stats_forward(a.double(), p.double(), fidx, signs.double(), 1, 0.0)
    for x, y in zip(got, want, strict=True):
        assert x.dtype == torch.float64 and torch.equal(x, y)

    a_nc = torch.cat([a, a], 1)[:, ::2]  # (rows, c) views with stride 2
    p_nc = torch.cat([p, p], 1)[:, ::2]
    assert not a_nc.is_contiguous()
    got, want = _both(extreme_stats_forward, a_nc, p_nc, fidx, signs, 2, 0.2, 2)
    assert torch.equal(got[0], want[0])
    _close(got[1], want[1], "mean")
    _close(got[2], want[2], "var")


def test_public_edge_extreme_stats_gradients_native_equals_torch():
    gen = torch.Generator().manual_seed(6)
    a = torch.randn(2, 40, 8, generator=gen)
    p = torch.randn(2, 40, 8, generator=gen)
    idx = torch.randint(0, 40, (2, 40, 8), generator=gen)
    out = []
    for on in (True, False):
        ar, pr = a.clone().requires_grad_(True), p.clone().requires_grad_(True)
        with _native(on):
            ext, mean, var = edge_extreme_stats(ar, pr, idx, None, stats=2, slope=0.1)
            (ext.sum() + (mean * 3).sum() + (var * 2).sum()).backward()
        out.append((ext.detach(), mean.detach(), var.detach(), ar.grad, pr.grad))
    for x, y, what in zip(*out, ("ext", "mean", "var", "grad a", "grad p"), strict=True):
        _close(x, y, what)


def _kernel_args(rows=8, c=4, k=3):
    a = np.zeros((rows, c), np.float32)
    p = np.ones((rows, c), np.float32)
    fidx = np.zeros((rows, k), np.int64)
    ext = np.empty((rows, c), np.float32)
    s1, s2 = np.zeros(c), np.zeros(c)
    shift = np.zeros(c, np.float32)
    return a, p, fidx, ext, s1, s2, shift


def test_kernel_rejects_bad_buffers_with_clear_errors():
    fwd, bwd = edge_extreme._native_edge.forward, edge_extreme._native_edge.backward
    a, p, fidx, ext, s1, s2, shift = _kernel_args()
    fwd(a, p, fidx, None, 1, 0.0, shift, 0, 8, ext, s1, s2)  # valid call
    assert np.array_equal(ext, p) and s1.tolist() == [24.0] * 4  # 8 rows × 3 edges of z = 1
    bad = fidx.copy()
    bad[5, 2] = 8
    with pytest.raises(ValueError, match=r"fidx\[5, 2\] = 8 is outside \[0, R = 8\)"):
        fwd(a, p, bad, None, 0, 0.0, None, 0, 8, ext, None, None)
    bad[5, 2] = -1
    with pytest.raises(ValueError, match="outside"):
        bwd(a, p, bad, ext, ext, None, None, 0, 0.0, 0, 8, None, np.zeros_like(p))
    with pytest.raises(ValueError, match="a must be a C-contiguous 2-D float32"):
        fwd(a.astype(np.float64), p, fidx, None, 0, 0.0, None, 0, 8, ext, None, None)
    with pytest.raises(ValueError, match="fidx must be a C-contiguous 2-D int64"):
        fwd(a, p, fidx.astype(np.int32), None, 0, 0.0, None, 0, 8, ext, None, None)
    with pytest.raises(ValueError, match="C-contiguous"):
        fwd(a, np.asfortranarray(np.ones((8, 4), np.float32)), fidx, None, 0, 0.0, None, 0, 8,
            ext, None, None)  # fmt: skip
    with pytest.raises(ValueError, match="writable"):
        ro = ext.copy()
        ro.flags.writeable = False
        fwd(a, p, fidx, None, 0, 0.0, None, 0, 8, ro, None, None)
    with pytest.raises(ValueError, match="0 <= r0 <= r1 <= R"):
        fwd(a, p, fidx, None, 0, 0.0, None, 2, 9, ext, None, None)
    with pytest.raises(ValueError, match="shift must be an array, got None"):
        fwd(a, p, fidx, None, 1, 0.0, None, 0, 8, ext, s1, s2)
    with pytest.raises(ValueError, match="stats must be 0, 1 or 2"):
        fwd(a, p, fidx, None, 3, 0.0, shift, 0, 8, ext, s1, s2)
    with pytest.raises(ValueError, match="sgn must have C = 4 entries"):
        fwd(a, p, fidx, np.ones(3, np.float32), 0, 0.0, None, 0, 8, ext, None, None)
    with pytest.raises(ValueError, match=r"a, p \(R, C\) and fidx \(R, k\) with k >= 1"):
        fwd(a[:4], p, fidx, None, 0, 0.0, None, 0, 8, ext, None, None)
    with pytest.raises(ValueError, match=r"grad_p_out must be \(R, C\)"):
        bwd(a, p, fidx, ext, ext, None, None, 0, 0.0, 0, 8, None, np.zeros((8, 5), np.float32))
    with pytest.raises(ValueError, match="ext_out shares memory with p"):
        fwd(a, p, fidx, None, 0, 0.0, None, 0, 8, p, None, None)
    with pytest.raises(ValueError, match="s1_out shares memory with s2_out"):
        fwd(a, p, fidx, None, 1, 0.0, shift, 0, 8, ext, s1, s1)
    with pytest.raises(ValueError, match="grad_p_out shares memory with grad_a_out"):
        ga = np.zeros_like(p)
        bwd(a, p, fidx, ext, ext, shift, shift, 1, 0.0, 0, 8, ga, ga)
    with pytest.raises(ValueError, match="grad_a_out shares memory with a"):
        bwd(a, p, fidx, ext, ext, shift, shift, 1, 0.0, 0, 8, a, np.zeros_like(p))
    with pytest.raises(ValueError, match="c0 must be an array"):
        bwd(a, p, fidx, ext, None, None, None, 1, 0.0, 0, 8, a.copy(), np.zeros_like(p))


def test_no_native_env_reaches_the_torch_body(monkeypatch):
    """POINTSEG_NO_NATIVE=1 is read at call time: the kernel is not touched."""
    calls = []
    real = edge_extreme._native_edge

    class _Spy:
        def forward(self, *args):
            calls.append("forward")
            return real.forward(*args)

        def backward(self, *args):
            calls.append("backward")
            return real.backward(*args)

    monkeypatch.setattr(edge_extreme, "_native_edge", _Spy())
    a, p, fidx, signs = _inputs(16, 4, 4, False, "pos")
    with _native(False):
        extreme_stats_forward(a, p, fidx, signs, 1, 0.0)
    assert calls == []
    with _native(True):
        ext, mean, _ = extreme_stats_forward(a, p, fidx, signs, 1, 0.0)
        extreme_stats_backward(a, p, fidx, ext, mean, ext, mean, mean, 1, 0.0)
    assert calls == ["forward", "backward"]
