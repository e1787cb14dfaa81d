"""Exact kNN (pointseg.graph.knn) against a float64 brute force."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch

from pointseg.graph import knn, knn_ranks
from pointseg.graph.knn import (
    _MIN_PARALLEL,
    HAVE_NATIVE,
    _select_np,
    _select_rows_np,
    default_chunk_size,
)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
# The compiled kernel is part of every install with a C compiler; without one it is skipped.
NATIVE = pytest.param(
    "native", marks=pytest.mark.skipif(not HAVE_NATIVE, reason="pointseg._native._select not built")
)


def brute_sq_dist(x: torch.Tensor) -> torch.Tensor:
    """(B, N, N) float64 squared distances by explicit differences (no expansion)."""
    x = x.double()
    return (x.unsqueeze(2) - x.unsqueeze(1)).pow(2).sum(-1)


def brute_knn(x: torch.Tensor, k: int) -> torch.Tensor:
    return brute_sq_dist(x).topk(k, dim=-1, largest=False, sorted=True).indices


def rows_as_sets(idx: torch.Tensor) -> list[frozenset[int]]:
    return [frozenset(r) for r in idx.reshape(-1, idx.shape[-1]).tolist()]


@pytest.mark.parametrize("method", ["auto", "topk", "partition", NATIVE])
@pytest.mark.parametrize(
    "shape,k", [((3, 200, 8), 12), ((1, 64, 3), 1), ((2, 97, 32), 20), ((2, 150, 16), 60)]
)
def test_knn_matches_float64_brute_force(shape, k, method):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    idx = knn(x, k, method=method)
    ref = brute_knn(x, k)
    assert idx.shape == (shape[0], shape[1], k) and idx.dtype == torch.long
    # Gaussian data has no near-ties at these sizes: exact equality, order included.
    assert torch.equal(idx, ref)
    assert torch.equal(idx[..., 0], torch.arange(shape[1]).expand(shape[0], -1))


def test_knn_nearest_first_and_exact_by_distance():
    # Distances of the returned neighbours (in float64) are non-decreasing and equal the k smallest.
    torch.manual_seed(1)
    x = torch.rand(2, 300, 6)
    idx = knn(x, 24)
    d = brute_sq_dist(x)
    got = d.gather(-1, idx)  # (B, N, k)
    want = d.sort(dim=-1).values[..., :24]
    assert (got[..., 1:] >= got[..., :-1] - 1e-6).all()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_centering_keeps_precision_far_from_origin():
    # ‖x‖² ≈ 8e6 ≫ neighbour gaps: the uncentred float32 expansion swaps many ranks here.
    torch.manual_seed(2)
    x = torch.randn(2, 256, 8) + 1000.0
    assert torch.equal(knn(x, 16), brute_knn(x, 16))
    # Same graph as the data moved back to the origin (translation invariance).
    assert torch.equal(knn(x, 16), knn(x - 1000.0, 16))


@pytest.mark.parametrize("method", ["topk", "partition", NATIVE])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 95, 96, 10_000])
def test_chunked_equals_unchunked(chunk_size, method):
    torch.manual_seed(3)
    x = torch.randn(2, 96, 16)
    want = knn(x, 40, chunk_size=96, method=method)
    assert torch.equal(knn(x, 40, chunk_size=chunk_size, method=method), want)


@pytest.mark.parametrize("k", [1, 3, 17, 64, 200])
def test_partition_selection_equals_stable_argsort_with_ties(k):
    # Integer-valued scores: many exact ties, including at the k-th value. The partition path
    # must give the k smallest with ties broken by the lower column, i.e. a stable argsort.
    rng = np.random.default_rng(0)
    s = rng.integers(-20, 20, size=(64, 200)).astype(np.float32)
    s[0] = 0.0  # a row that is one big tie
    s[1, :7] = -np.inf  # -inf (how self is forced first) mixed with ties
    out = np.empty((64, k), dtype=np.int64)
    _select_rows_np(s, k, out)
    np.testing.assert_array_equal(out, np.argsort(s, axis=1, kind="stable")[:, :k])


@pytest.mark.parametrize("k", [1, 5, 33, 150])
@pytest.mark.parametrize("tie_row", [None, 7])
def test_partition_selection_fast_and_tied_paths(k, tie_row):
    # Distinct Gaussian scores (negative and positive, -inf "self" on a diagonal) take the no-tie
    # fast path (exactly k hits per row); one row tied at its k-th value sends the block through
    # the per-row count path. Both must equal a stable argsort (ties by the lower column).
    rng = np.random.default_rng(1)
    s = rng.standard_normal((48, 300)).astype(np.float32)
    s[np.arange(48), np.arange(48) * 5] = -np.inf
    if tie_row is not None:
        row = s[tie_row]
        kth = np.sort(row)[k - 1]
        row[np.flatnonzero(row > kth)[:3]] = kth  # three more copies of the k-th value
    out = np.empty((48, k), dtype=np.int64)
    _select_rows_np(s, k, out)
    np.testing.assert_array_equal(out, np.argsort(s, axis=1, kind="stable")[:, :k])


@pytest.mark.parametrize("k", [2, 40])
def test_methods_agree_up_to_ties_with_duplicates(k):
    torch.manual_seed(8)
    x = torch.randn(2, 120, 4)
    x[:, 60:] = x[:, :60]  # exact distance ties everywhere
    d = brute_sq_dist(x)
    a = knn(x, k, method="topk")
    b = knn(x, k, method="partition")
    torch.testing.assert_close(d.gather(-1, a), d.gather(-1, b), rtol=0, atol=1e-6)
    assert torch.equal(b[..., 0], torch.arange(120).expand(2, -1))


def test_partition_method_rejects_float64():
    with pytest.raises(ValueError, match="method='partition' needs a float32 CPU tensor"):
        knn(torch.randn(1, 40, 3, dtype=torch.float64), 35, method="partition")
    with pytest.raises(ValueError, match="method must be one of"):
        knn(torch.randn(1, 40, 3), 3, method="fast")


def test_overflowing_features_raise():
    x = torch.full((1, 8, 3), 3e38)
    x[:, 1::2] = -3e38  # finite, mean 0, but ‖x‖² overflows float32
    with pytest.raises(ValueError, match=r"knn: squared norms of x .* overflow"):
        knn(x, 2)


def test_default_chunk_size_bounds():
    assert default_chunk_size(1) == 1
    assert 1 <= default_chunk_size(4096) <= 4096
    assert default_chunk_size(10**9) == 1


def test_self_first_with_duplicate_points():
    torch.manual_seed(4)
    x = torch.randn(2, 100, 5)
    x[:, 50:] = x[:, :50]  # every point has an exact duplicate at distance 0
    idx = knn(x, 4)
    n = torch.arange(100)
    assert torch.equal(idx[..., 0], n.expand(2, -1))
    assert torch.equal(idx[..., 1], ((n + 50) % 100).expand(2, -1))


@pytest.mark.parametrize(
    "method,k", [("topk", 5), ("partition", 5), ("auto", 33), ("partition", 33), ("topk", 33)]
)
def test_self_first_when_all_points_identical(method, k):
    x = torch.full((3, 40, 4), 7.25)
    idx = knn(x, k, chunk_size=6, method=method)
    assert torch.equal(idx[..., 0], torch.arange(40).expand(3, -1))
    assert all(len(set(r)) == k for r in idx.reshape(-1, k).tolist())


@pytest.mark.parametrize("method", ["topk", "partition", NATIVE])
def test_k_equals_n_single_batch(method):
    torch.manual_seed(5)
    x = torch.randn(1, 16, 3)
    idx = knn(x, 16, method=method)
    assert idx.shape == (1, 16, 16)
    assert torch.equal(idx, brute_knn(x, 16))
    assert torch.equal(idx.sort(-1).values, torch.arange(16).expand(1, 16, 16))


def test_float64_input_and_no_gradient():
    torch.manual_seed(6)
    x = torch.randn(2, 50, 4, dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        idx = knn(x, 8)
    assert not idx.requires_grad and idx.grad_fn is None
    assert torch.equal(idx, brute_knn(x.detach(), 8))
    # The graph is a constant: a loss through gathered features gets gradient only via the gather.
    feats = x.gather(1, idx[..., 1].unsqueeze(-1).expand(-1, -1, 4))
    feats.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "x,k,match",
    [
        (torch.zeros(8, 3), 2, r"x must be \(B, N, C\).*got shape \(8, 3\)"),
        (torch.zeros(1, 8, 3, 2), 2, r"x must be \(B, N, C\).*got shape \(1, 8, 3, 2\)"),
        (torch.zeros(0, 8, 3), 2, r"got shape \(0, 8, 3\)"),
        (torch.zeros(2, 8, 0), 2, r"got shape \(2, 8, 0\)"),
        (torch.zeros(2, 8, 3), 16, r"N >= k=16; got shape \(2, 8, 3\)"),
        (torch.zeros(2, 8, 3), 0, r"k must be >= 1; got k=0"),
        (torch.zeros(2, 8, 3), 2.0, r"k must be an int"),
        (torch.zeros(2, 8, 3), True, r"k must be an int"),
        (torch.zeros(2, 8, 3, dtype=torch.long), 2, r"floating-point.*torch.int64"),
        ([[1.0, 2.0, 3.0]], 1, r"must be a torch.Tensor"),
    ],
)
def test_bad_input_raises_clear_value_error(x, k, match):
    with pytest.raises(ValueError, match=r"^knn: .*" + match):
        knn(x, k)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_raises(bad):
    x = torch.zeros(2, 8, 3)
    x[1, 3, 2] = bad
    with pytest.raises(ValueError, match=r"knn: x of shape \(2, 8, 3\) contains 1 non-finite"):
        knn(x, 2)


def test_bad_chunk_size_raises():
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        knn(torch.zeros(1, 8, 3), 2, chunk_size=0)


def test_knn_ranks_matches_brute_force():
    torch.manual_seed(7)
    x = torch.randn(2, 128, 8)
    ranks = torch.tensor([0, 3, 4, 10, 31])
    ref = brute_knn(x, 32)[..., ranks]
    assert torch.equal(knn_ranks(x, ranks), ref)
    assert torch.equal(knn_ranks(x, ranks.int(), chunk_size=5), ref)


@pytest.mark.parametrize(
    "ranks,match",
    [
        (torch.tensor([], dtype=torch.long), "non-empty 1-D integer"),
        (torch.tensor([[0, 1]]), "non-empty 1-D integer"),
        (torch.tensor([0.0, 1.0]), "non-empty 1-D integer"),
        (torch.tensor([-1, 2]), "ranks must be >= 0"),
        (torch.tensor([0, 8]), r"N >= k=9; got shape \(1, 8, 3\)"),
    ],
)
def test_knn_ranks_bad_ranks(ranks, match):
    with pytest.raises(ValueError, match=match):
        knn_ranks(torch.randn(1, 8, 3), ranks)


def test_real_s3dis_xyz_exact_up_to_ties():
    # Real room coordinates are quantised (mm), so exact distance ties exist: compare distances.
    room = DATA / "s3dis_raw" / "Area_1" / "hallway_1" / "Annotations"
    files = sorted(room.glob("*.txt")) if room.is_dir() else []
    if not files:
        pytest.skip(f"real S3DIS sample not found under {room}")
    xyz = np.loadtxt(files[0], usecols=(0, 1, 2), max_rows=6000, dtype=np.float64)
    rng = np.random.default_rng(0)
    pts = torch.from_numpy(xyz[rng.choice(len(xyz), size=(2, 1024), replace=False)]).float()
    idx = knn(pts, 16)  # (2, 1024, 16)
    d = brute_sq_dist(pts)
    got = d.gather(-1, idx)
    want = d.sort(dim=-1).values[..., :16]
    # float32 rounding of the expansion is ~eps·‖x − mean‖²: only swaps within that are allowed.
    centred = pts.double() - pts.double().mean(dim=1, keepdim=True)
    tol = 8 * torch.finfo(torch.float32).eps * float(centred.pow(2).sum(-1).max())
    torch.testing.assert_close(got, want, rtol=0, atol=tol)
    assert (got == want).double().mean() >= 0.999
    assert torch.equal(idx[..., 0], torch.arange(1024).expand(2, -1))


def _select_in_child(s: np.ndarray, want: np.ndarray) -> None:
    # Runs in a forked child: the parent's pool threads do not exist here.
    got = _select_np(s, 40, workers=2)
    raise SystemExit(0 if np.array_equal(got, want) else 3)


def test_thread_pool_survives_fork():
    # DataLoader workers fork: a pool inherited from the parent has no threads and would hang.
    rng = np.random.default_rng(0)
    s = rng.standard_normal((600, 512)).astype(np.float32)
    assert s.size >= _MIN_PARALLEL  # so the pool is used, not the inline path
    want = _select_np(s, 40, workers=2)  # creates the pool in the parent
    np.testing.assert_array_equal(want, np.argsort(s, axis=1, kind="stable")[:, :40])
    proc = multiprocessing.get_context("fork").Process(target=_select_in_child, args=(s, want))
    proc.start()
    proc.join(timeout=60)
    if proc.is_alive():
        proc.kill()
        pytest.fail("knn selection hung in a forked child")
    assert proc.exitcode == 0


def test_non_contiguous_and_half_inputs():
    torch.manual_seed(11)
    x_cn = torch.randn(2, 8, 150)  # channels-first storage, as a conv layer would hold it
    x = x_cn.transpose(1, 2)  # (B, N, C) non-contiguous view
    assert not x.is_contiguous()
    assert torch.equal(knn(x, 40), knn(x.contiguous(), 40))
    xh = x.contiguous().half()  # ranked in float32 (half matmuls are slow and coarse on CPU)
    assert torch.equal(knn(xh, 40), knn(xh.float(), 40))


@pytest.mark.slow
def test_full_size_partition_equals_topk_up_to_ties():
    # The benchmark's size: B=2, N=4096, D=64, k·d = 432 (ResGCN-28's deepest block).
    torch.manual_seed(13)
    x = torch.randn(2, 4096, 64)
    a = knn(x, 432, method="topk")
    b = knn(x, 432, method="partition")
    assert (a == b).double().mean() > 0.999  # only exact float32 ties may be ordered differently
    xc = x.double() - x.double().mean(1, keepdim=True)
    rows = torch.arange(0, 4096, 37)
    d = (xc[:, rows].unsqueeze(2) - xc.unsqueeze(1)).pow(2).sum(-1)  # (2, R, N) float64
    da, db = d.gather(-1, a[:, rows]), d.gather(-1, b[:, rows])
    torch.testing.assert_close(da, db, rtol=0, atol=1e-4)
