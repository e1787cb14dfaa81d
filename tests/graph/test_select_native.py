"""The compiled selection kernel (pointseg._native._select) against a stable argsort.

Every path of the kernel is driven on purpose: the sampled threshold (N >= 1024, k·4 <= N), the
whole-row path (small N, large k, a sample that under-shoots), -inf / +inf / NaN scores, exact
ties, and arbitrary rank lists.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from pointseg.graph.knn import HAVE_NATIVE, knn, knn_ranks

if not HAVE_NATIVE:
    if shutil.which("cc") or shutil.which("gcc"):
        pytest.fail(
            "pointseg._native._select is not built although a C compiler exists: run "
            "`pip install -e .` (or `python setup.py build_ext --inplace`)",
            pytrace=False,
        )
    pytest.skip("no C compiler: the compiled kNN kernel is optional", allow_module_level=True)

from pointseg._native import _select  # noqa: E402


def stable_order(s: np.ndarray) -> np.ndarray:
    """Reference: columns by (value, column) ascending; NaN last (numpy's argsort order)."""
    return np.argsort(s, axis=1, kind="stable")


def select(s: np.ndarray, ranks) -> np.ndarray:
    ranks = np.asarray(ranks, dtype=np.int64)
    out = np.full((s.shape[0], ranks.size), -1, dtype=np.int64)
    _select.select_ranks(np.ascontiguousarray(s, dtype=np.float32), ranks, out)
    return out


@pytest.mark.parametrize(
    "n,kmax",
    [(n, k) for n in (5, 300, 1024, 4096, 5000) for k in (1, 16, 100, 432) if k <= n] + [(5, 5)],
)
def test_first_kmax_equal_stable_argsort(n, kmax):
    rng = np.random.default_rng(n * 1000 + kmax)
    s = rng.standard_normal((40, n)).astype(np.float32) ** 2 * 30 - 5
    s[np.arange(40), rng.integers(0, n, 40)] = -np.inf  # a self entry per row, like the diagonal
    np.testing.assert_array_equal(select(s, np.arange(kmax)), stable_order(s)[:, :kmax])


def test_dilated_ranks_and_arbitrary_rank_lists():
    rng = np.random.default_rng(1)
    s = rng.random((64, 4096), dtype=np.float32)
    order = stable_order(s)
    for ranks in (np.arange(0, 432, 27), np.array([431, 0, 5, 5, 200]), np.array([3])):
        np.testing.assert_array_equal(select(s, ranks), order[:, ranks])


@pytest.mark.parametrize("levels", [2, 5, 50])
def test_exact_ties_go_to_the_lower_column(levels):
    rng = np.random.default_rng(levels)
    s = rng.integers(0, levels, (50, 2048)).astype(np.float32)
    for kmax in (1, 7, 300, 2048):
        np.testing.assert_array_equal(select(s, np.arange(kmax)), stable_order(s)[:, :kmax])


def test_signed_zeros_tie_like_argsort():
    s = np.zeros((4, 1500), np.float32)
    s[:, ::3] = -0.0  # -0.0 == +0.0: a tie, broken by column as in argsort
    s[:, 700:] = 1.0
    np.testing.assert_array_equal(select(s, np.arange(300)), stable_order(s)[:, :300])


def test_non_finite_scores_in_argsort_order():
    rng = np.random.default_rng(3)
    s = rng.random((30, 1200), dtype=np.float32)
    s[:, 10] = np.inf
    s[:, 20] = np.nan
    s[:, 30] = -np.inf
    s[5] = np.nan  # a row of NaNs: the sample finds no finite value
    s[6, :] = np.inf
    s[7, 100:] = np.nan  # fewer finite values than kmax: +inf then NaN columns fill the tail
    np.testing.assert_array_equal(select(s, np.arange(1200)), stable_order(s))
    np.testing.assert_array_equal(select(s, np.arange(150)), stable_order(s)[:, :150])


def test_undershooting_sample_falls_back_to_the_whole_row():
    # The strided sample (every 16th column at N = 4096) sees only tiny values, so its threshold
    # catches just those 256 columns; with kmax = 600 the kernel must use the whole row.
    s = np.random.default_rng(4).random((8, 4096), dtype=np.float32) + 10
    s[:, ::16] = np.linspace(0, 1, 256, dtype=np.float32)
    np.testing.assert_array_equal(select(s, np.arange(600)), stable_order(s)[:, :600])


def test_bad_buffers_raise_clear_errors():
    s = np.zeros((4, 100), np.float32)
    out = np.zeros((4, 3), np.int64)
    with pytest.raises(ValueError, match="scores must be a C-contiguous 2-D float32"):
        _select.select_ranks(s.astype(np.float64), np.arange(3), out)
    with pytest.raises(ValueError, match="ranks .* in \\[0, N\\)"):
        _select.select_ranks(s, np.array([0, 100]), np.zeros((4, 2), np.int64))
    with pytest.raises(ValueError, match="out \\(R, k\\)"):
        _select.select_ranks(s, np.arange(3), np.zeros((5, 3), np.int64))
    with pytest.raises(ValueError, match="C-contiguous"):
        _select.select_ranks(s[:, ::2], np.arange(3), out)
    out.setflags(write=False)
    with pytest.raises((BufferError, ValueError), match="read-only|writable"):
        _select.select_ranks(s, np.arange(3), out)


def test_knn_native_equals_partition_path():
    # Same exact neighbours, same tie rule (lower index first) as the numpy partition path, on a
    # feature-space graph with duplicated points (distance ties) and the dilated rank lists.
    torch.manual_seed(0)
    x = torch.randn(2, 1500, 16)
    x[:, 1000:] = x[:, :500]
    for k in (16, 96, 400):
        assert torch.equal(knn(x, k, method="native"), knn(x, k, method="partition"))
    ranks = torch.arange(0, 16 * 9, 9)
    assert torch.equal(
        knn_ranks(x, ranks, method="native"), knn(x, 16 * 9, method="partition")[..., ranks]
    )
    assert torch.equal(knn(x, 16), knn(x, 16, method="native"))


def test_native_method_needs_float32_cpu():
    with pytest.raises(ValueError, match="method='native' needs"):
        knn(torch.randn(1, 40, 3, dtype=torch.float64), 5, method="native")


def test_no_native_env_switches_auto_to_the_numpy_path(monkeypatch):
    import sys

    knn_module = sys.modules["pointseg.graph.knn"]  # the module (pointseg.graph.knn is shadowed)

    calls = []
    real = knn_module._native_rows
    monkeypatch.setattr(knn_module, "_native_rows", lambda *a: calls.append(1) or real(*a))
    monkeypatch.delenv("POINTSEG_NO_NATIVE", raising=False)
    x = torch.randn(1, 1500, 8)  # auto picks the kernel from N = 1024 on (k <= N / 4)
    want = knn(x, 40)
    assert calls  # auto used the kernel
    calls.clear()
    monkeypatch.setenv("POINTSEG_NO_NATIVE", "1")
    assert torch.equal(knn(x, 40), want) and not calls


def test_worker_threads_respect_inference_mode_and_restore_threads():
    # The native path runs matmuls in worker threads (their own grad mode, one torch thread
    # each): under inference_mode the result is the same and the thread count is restored.
    torch.manual_seed(2)
    x = torch.randn(2, 1200, 16)
    x1 = torch.randn(1, 1500, 16)  # B = 1: the rows of one element split over the workers
    want, want1 = knn(x, 20, method="partition"), knn(x1, 300, method="partition")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # conftest runs single-threaded; the worker path needs >= 2
    try:
        with torch.inference_mode():
            got = knn(x, 20, method="native")
        got1 = knn(x1, 300, method="native", chunk_size=7)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(got, want) and torch.equal(got1, want1)


@pytest.mark.parametrize("n,kmax", [(256, 220), (256, 16), (4096, 432)])
def test_skewed_rows_crowding_one_bucket(n, kmax):
    # Near-duplicate values plus a few far outliers put most candidates into one linear bucket
    # (collapsed ReLU features do this): the kernel's merge sort of crowded buckets must keep
    # the exact stable order.
    rng = np.random.default_rng(n + kmax)
    s = (1.0 + rng.random((64, n)) * 1e-3).astype(np.float32)
    s[:, rng.integers(0, n, 3)] = 1e6
    s[:, ::7] = 1.0  # exact ties too
    np.testing.assert_array_equal(select(s, np.arange(kmax)), stable_order(s)[:, :kmax])


@pytest.mark.parametrize("kind", ["ties", "self_and_dups", "crowded"])
def test_dilated_ranks_of_every_block_equal_stable_argsort(kind):
    # The kernel sorts only the buckets that hold a wanted rank (0, d, ..., 15d of the 16d
    # nearest): every dilation of ResGCN-28, sorted and unsorted rank lists, on exact ties,
    # duplicated points (with several -inf per row) and one crowded bucket.
    rng = np.random.default_rng(["ties", "self_and_dups", "crowded"].index(kind))
    n = 4096
    if kind == "ties":
        s = rng.integers(0, 40, (24, n)).astype(np.float32)
    elif kind == "self_and_dups":
        s = np.repeat(rng.random((24, n // 8), dtype=np.float32), 8, axis=1)
        s[:, rng.integers(0, n, 3)] = -np.inf
    else:
        s = (1.0 + rng.random((24, n)) * 1e-3).astype(np.float32)
        s[:, rng.integers(0, n, 3)] = 1e6
        s[:, ::5] = 1.0
    order = stable_order(s)
    for d in range(1, 28):
        dilated = np.arange(0, 16 * d, d)
        for ranks in (dilated, rng.permutation(dilated), np.sort(rng.choice(16 * d, 5))):
            np.testing.assert_array_equal(select(s, ranks), order[:, ranks], err_msg=f"d={d}")
