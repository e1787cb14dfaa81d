"""Exact batched k-nearest neighbours on dense point / feature tensors.

The dense path of DeepGCNs (Li et al., ICCV'19) rebuilds a kNN graph in feature space at every
block. For ``x`` of shape ``(B, N, C)`` we rank, per query row ``i``, the squared distances

    ‖x_i − x_j‖² = ‖x_i‖² − 2 x_i·x_j + ‖x_j‖²

and return the indices of the ``k`` nearest points ``(B, N, k)`` (self at rank 0, nearest first).

How (each choice measured in ``benchmarks/knn.py``):
- The features are centred per batch element first: the expansion above cancels catastrophically
  when ‖x‖ ≫ ‖x_i − x_j‖, and centring cuts float32 rank disagreement with float64 ~8×.
- ``‖x_i‖²`` is constant along a query row, so ranking only needs ``‖x_j‖² − 2 x_i·x_j``: one
  fused ``torch.baddbmm`` per chunk of query rows, never a full ``B × N × N`` matrix.
- Self is forced to rank 0 by writing ``-inf`` on the diagonal: with duplicate points (distance 0
  to another point) rounding could otherwise put a duplicate first.
- Selection, not distance, dominated dilated graphs (k·d up to 432 of N = 4096). On CPU float32
  the compiled kernel ``pointseg._native._select`` (built by setup.py; see its header) reads each
  score row once: a sampled threshold, one AVX2 compare pass for the ~1.6·k·d candidates, a
  stable bucket sort of those, and only the requested ranks written (a dilated graph never
  materialises the k·d list). Each worker thread scores 64 query rows at a time with its own
  single-threaded matmul into a 1 MB buffer and selects from it while it is in cache. Measured
  on ResGCN-28's 28 real layer inputs (B=2, N=4096): 2.8 s vs 5.2 s for the numpy path below,
  of which ~1.3 s are the distance matmuls. Without the extension: ``torch.topk``
  copies every row into (value, index) pairs before its nth_element. On CPU float32 (unless k is
  tiny relative to N, where topk's heap wins) we instead take the k-th smallest value with
  numpy's SIMD ``np.partition``, keep the entries ``<=`` it (exactly k per row unless the k-th
  value is tied), and sort those k by a composite int64 key (order-preserving float bits,
  column). Rows with a tie at the k-th value are resolved with the same key over the whole row,
  so ties always go to the lower index. Row blocks are split over a thread pool of
  ``torch.get_num_threads()`` workers (numpy releases the GIL; the pool is rebuilt after fork).
"""

from __future__ import annotations

import contextlib
import numbers
import os

import numpy as np
import torch
from torch import Tensor

from pointseg import _native as _native_switch
from pointseg.graph._workers import get_pool, row_splits

__all__ = [
    "knn",
    "knn_ranks",
    "check_points",
    "default_chunk_size",
    "METHODS",
    "KNN_MODES",
    "HAVE_NATIVE",
    "set_knn_mode",
    "get_knn_mode",
    "knn_mode",
    "bf16_selected",
]

METHODS = ("auto", "topk", "partition", "native", "bf16")
# Which exact path ``method="auto"`` takes (set by ``--knn``, a model's config, or the
# ``POINTSEG_KNN`` environment variable): "auto" = the bf16-candidate path (pointseg.graph.bf16)
# where it was measured faster (nowhere yet: see AUTO_BF16), else "exact32"; "exact32" = the fp32
# paths below; "bf16" = the bf16-candidate path wherever it can run (tests, A/B runs).
KNN_MODES = ("auto", "exact32", "bf16")

try:  # the compiled selection kernel (optional: setup.py builds it when a C compiler exists)
    from pointseg._native import _select as _native_select
except ImportError:  # pragma: no cover - exercised on machines without a compiler
    _native_select = None

HAVE_NATIVE = _native_select is not None
# the bf16 re-rank kernel (an older build of _select lacks it: the torch path is used instead)
HAVE_RERANK = HAVE_NATIVE and hasattr(_native_select, "select_rerank")


def _mode_from_env() -> str:
    mode = os.environ.get("POINTSEG_KNN", "auto") or "auto"
    return mode if mode in KNN_MODES else "auto"


_mode = _mode_from_env()
_forced = False  # set by a --knn flag: a model config's `knn` does not override it
# What the last bf16-path call did (benchmarks read it): rows re-done in fp32, mean |S|.
last_bf16_stats: dict = {}


def set_knn_mode(mode: str, *, force: bool = False) -> str:
    """Set the process-wide kNN mode (one of ``KNN_MODES``); returns the previous one.

    ``force=True`` (a command's ``--knn`` flag) also makes models ignore their config's ``knn``.
    """
    global _mode, _forced
    if mode not in KNN_MODES:
        raise ValueError(f"knn mode must be one of {KNN_MODES}; got {mode!r}")
    prev, _mode = _mode, mode
    _forced = _forced or force
    return prev


def get_knn_mode() -> str:
    return _mode


@contextlib.contextmanager
def knn_mode(mode: str | None, *, weak: bool = False):
    """``with knn_mode("exact32"): ...`` — the kNN mode inside the block (None: unchanged).

    ``weak=True`` (a model's config): no change while a forced mode (``--knn``) is set.
    """
    if mode is None or (weak and _forced):
        yield
        return
    prev = set_knn_mode(mode)
    try:
        yield
    finally:
        set_knn_mode(prev)


# Whether "auto" may take the bf16 path at all. Measured (docs/knn.md): on ResGCN-28's real layer
# features the neighbour gaps fall below bf16's resolution of ‖x‖² as depth grows (feature norms
# grow ~10⁴× over 27 residual blocks), the proven candidate sets grow to > N/2 and most deep rows
# fall back to fp32: a whole ResGCN-28 forward was 0.67× as fast (kNN CPU time, interleaved A/B).
# So "auto" stays on exact32; the rule below says where bf16 would be tried once a kernel wins.
AUTO_BF16 = False
# auto's bf16 rule: rows of >= 1024 points (the kernel's sampled threshold), >= 16 channels (with
# xyz, C = 3, the bf16 band is wider than the neighbour gaps) and k·d >= 64 (below, the re-rank
# kernel's fixed per-row work cost more than the halved distance product saved).
_BF16_MIN_N = 1024
_BF16_MIN_C = 16
_BF16_MIN_KMAX = 64


def bf16_selected(x: Tensor, kmax: int, method: str = "auto") -> bool:
    """Whether ``method`` on ``x`` (B, N, C) with ``kmax`` neighbours takes the bf16 path."""
    if method == "bf16":
        return x.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16)
    if method != "auto" or _mode == "exact32" or x.dtype == torch.float64:
        return False
    if _mode == "auto" and not AUTO_BF16:
        return False
    N, C = x.shape[1], x.shape[2]
    if _mode == "bf16":
        return True
    if N < _BF16_MIN_N or C < _BF16_MIN_C or kmax < _BF16_MIN_KMAX or kmax * 4 > N:
        return False
    if x.device.type == "cuda":
        return True
    if x.device.type == "cpu":
        from pointseg.graph.bf16 import native_bf16_cpu

        return HAVE_RERANK and not _native_disabled() and native_bf16_cpu()
    return False


def _native_disabled() -> bool:
    """``POINTSEG_NO_NATIVE=1`` makes ``method="auto"`` skip the compiled kernels (A/B runs)."""
    return _native_switch.disabled()


# Bytes of one (B, chunk, N) float32 score block: ~16 MB keeps the temporaries of a chunk
# (scores, partition copy, mask) in the last-level cache region; 256 rows × B=4 × N=4096.
_CHUNK_BYTES = 16 * 1024 * 1024
# torch.topk uses a heap (partial_sort) when k·64 <= N, which is competitive only for k tiny
# relative to N. Measured per row, one thread: N=4096: k=16 topk 11 µs vs partition 13.5 µs,
# k=24 14 vs 13, k=64 28 vs 15, k=432 65 vs 26; N=1024: k=16 5.5 vs 3.6. So partition when
# k · _PARTITION_RATIO > N.
_PARTITION_RATIO = 256
# auto uses the kernel where it was measured faster: rows of >= 1024 points with k·d <= N / 4
# (its sampled-threshold path; 1.6-2x the numpy path on ResGCN-28's layers). Short rows or
# k·d close to N (the demo's 256-point blocks with k·d up to 220) sort whole rows, where numpy's
# SIMD partition + sort measured faster (0.33 s vs 0.56 s of kNN per demo training step).
_NATIVE_MIN_N = 1024
# Native path: query rows scored per matmul = this many bytes of scores (64 rows at N = 4096):
# small enough to be selected from cache right after the matmul, large enough for the matmul.
_NATIVE_BLOCK_BYTES = 1 << 20
# Score blocks smaller than this (elements) are selected inline: thread hand-off costs more.
_MIN_PARALLEL = 1 << 18


def check_points(x: Tensor, k: int, name: str = "knn") -> None:
    """Validate ``x`` (B, N, C) for a k-nearest-neighbour query; raise ValueError otherwise."""
    if not isinstance(x, Tensor):
        raise ValueError(
            f"{name}: x must be a torch.Tensor of shape (B, N, C); got {type(x).__name__}"
        )
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"{name}: k must be an int >= 1; got {k!r}")
    if k < 1:
        raise ValueError(f"{name}: k must be >= 1; got k={k}")
    if x.dim() != 3 or x.shape[0] == 0 or x.shape[2] == 0:
        raise ValueError(
            f"{name}: x must be (B, N, C) with B >= 1, N >= k={k}, C >= 1; "
            f"got shape {tuple(x.shape)}"
        )
    if x.shape[1] < k:
        raise ValueError(f"{name}: x must be (B, N, C) with N >= k={k}; got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(
            f"{name}: x must be a floating-point tensor (B, N, C); got dtype {x.dtype}"
        )
    if x.device.type != "meta" and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name}: x of shape {tuple(x.shape)} contains {bad} non-finite value(s) (nan/inf); "
            "expected finite features"
        )


def default_chunk_size(n: int, batch: int = 1) -> int:
    """Query rows per chunk so one (batch, chunk, n) float32 score block is ~16 MB."""
    return max(1, min(n, _CHUNK_BYTES // (4 * n * max(1, batch))))


# --------------------------------------------------------------------------- selection
def _float_keys(v: np.ndarray) -> np.ndarray:
    """Order-preserving int64 image of float32 values (… ) → (…), ready to be shifted by 32."""
    b = v.view(np.int32).astype(np.int64)
    # Negative floats order backwards as integers: flip their magnitude bits.
    return np.where(b < 0, b ^ 0x7FFFFFFF, b)


def _select_rows_np(s: np.ndarray, k: int, out: np.ndarray) -> None:
    """Column indices of the k smallest values of each row of ``s`` (R, N) float32, ascending.

    Writes ``out`` (R, k) int64. Ties are broken by the lower column index.
    """
    r, n = s.shape
    if k == n:
        keys = (_float_keys(s) << 32) | np.arange(n, dtype=np.int64)  # (R, N)
        keys.sort(axis=1)
        np.bitwise_and(keys, 0xFFFFFFFF, out=out)
        return
    thr = np.partition(s, k - 1, axis=1)[:, k - 1 : k]  # (R, 1) the k-th smallest value
    mask = s <= thr  # (R, N): >= k True per row, exactly k unless the k-th value is tied
    flat = np.flatnonzero(mask)  # row-major hits
    if flat.size == r * k:
        # Every row has >= k hits, so a total of r·k means exactly k per row (no tie): the
        # common case, with no per-row count pass. Keys (order-preserving float bits, column),
        # built in place on the (R·k,) gather — measured −15…25% selection CPU vs the general
        # path below.
        b = s.reshape(-1)[flat].view(np.int32)  # (R·k,) float bits (a fresh copy)
        b ^= (b >> 31) & 0x7FFFFFFF  # negative floats order backwards: flip magnitude bits
        keys = b.astype(np.int64).reshape(r, k)
        keys <<= 32
        cols = flat.reshape(r, k)
        cols -= (np.arange(r, dtype=np.int64) * n)[:, None]  # flat index → column
        keys |= cols
        keys.sort(axis=1)
        np.bitwise_and(keys, 0xFFFFFFFF, out=out)
        return
    # Row counts from the sorted flat hits: one binary search per row boundary.
    bounds = np.searchsorted(flat, np.arange(r + 1, dtype=np.int64) * n)
    count = np.diff(bounds)  # (R,)
    tied = np.flatnonzero(count != k)
    mask[tied] = False
    flat = np.flatnonzero(mask)  # (R_ok · k,) row-major: k consecutive hits per row
    cols = flat % n
    keys = (_float_keys(s.reshape(-1)[flat]) << 32) | cols
    keys = keys.reshape(-1, k)
    keys.sort(axis=1)
    out[count == k] = keys & 0xFFFFFFFF  # (R_ok, k)
    # Rows tied at the k-th value: make every key unique (value, column), then select exactly.
    kt = (_float_keys(s[tied]) << 32) | np.arange(n, dtype=np.int64)  # (T, N)
    kt = np.partition(kt, k - 1, axis=1)[:, :k]
    kt.sort(axis=1)
    out[tied] = kt & 0xFFFFFFFF


def _run_blocks(blocks: list[tuple[np.ndarray, np.ndarray]], k, workers: int, fn=None) -> None:
    """Run ``fn(s, k, out)`` (default ``_select_rows_np``) for each (s, out) block, over the
    thread pool. Both selection functions release the GIL."""
    fn = _select_rows_np if fn is None else fn
    size = sum(s.size for s, _ in blocks)
    if workers <= 1 or len(blocks) <= 1 or size < _MIN_PARALLEL:
        for s, o in blocks:
            fn(s, k, o)
        return
    pool = get_pool(workers)
    futures = [pool.submit(fn, s, k, o) for s, o in blocks]
    for f in futures:
        f.result()


def _select_np(s: np.ndarray, k: int, workers: int) -> np.ndarray:
    """(R, N) float32 → (R, k) int64 indices of the k smallest per row, split over threads."""
    out = np.empty((s.shape[0], k), dtype=np.int64)
    _run_blocks([(s[a:b], out[a:b]) for a, b in row_splits(s.shape[0], workers)], k, workers)
    return out


def _scores_chunk(
    xc: Tensor, xt: Tensor, sq: Tensor, start: int, stop: int, buf: Tensor | None = None
) -> Tensor:
    """Ranking scores ``‖x_j‖² − 2 x_i·x_j`` for query rows ``start:stop``; self set to -inf.

    xc: (B, N, C) centred features; xt: (B, C, N) its transpose; sq: (B, 1, N) squared norms;
    buf: optional flat buffer of >= B·(stop − start)·N elements to write into (one allocation
    per graph instead of one ~16 MB block per chunk). Returns (B, stop − start, N), contiguous.
    """
    B, N = xc.shape[0], xc.shape[1]
    # One fused kernel: sq + (−2) · x_chunk @ xᵀ.  (B, m, N)
    if buf is None:
        s = torch.baddbmm(sq, xc[:, start:stop], xt, beta=1.0, alpha=-2.0)
    else:
        s = buf[: B * (stop - start) * N].view(B, stop - start, N)
        torch.baddbmm(sq, xc[:, start:stop], xt, beta=1.0, alpha=-2.0, out=s)
    # Diagonal entries (row r ↔ column start + r) of the (m, N) block, per batch element.
    s.diagonal(offset=start, dim1=1, dim2=2).fill_(float("-inf"))  # (B, m) view
    return s


def _native_rows(s: np.ndarray, ranks: np.ndarray, out: np.ndarray) -> None:
    """out (R, len(ranks)) ← columns at ``ranks`` of each row's stable ascending order."""
    _native_select.select_ranks(s, ranks, out)


def _native_task(xc, xt, sq, ranks, out, b: int, r0: int, r1: int, rows: int) -> None:
    """Rows r0:r1 of batch element b: score ``rows`` query rows at a time into one small buffer
    (a (rows, N) block that stays in L2), select from it at once, reuse it.

    xc (B, N, C), xt (B, C, N), sq (B, 1, N); ranks (k,) int64; out (B, N, k) int64 numpy."""
    n = xc.shape[1]
    buf = torch.empty(min(rows, r1 - r0), n, dtype=xc.dtype)
    for a in range(r0, r1, rows):
        e = min(r1, a + rows)
        s = buf[: e - a]  # (m, N)
        torch.addmm(sq[b], xc[b, a:e], xt[b], beta=1.0, alpha=-2.0, out=s)
        s.diagonal(offset=a).fill_(float("-inf"))  # self first: row i ↔ column a + i
        _native_rows(s.numpy(), ranks, out[b, a:e])


def _native_graph(xc, xt, sq, ranks, out, rows: int, workers: int) -> None:
    """Scores and selection together, per worker thread (see `_native_task`).

    Each worker runs its own single-threaded matmuls: the score block is selected while it is
    still in cache (measured −15% kNN time vs scoring 16 MB blocks with both threads and then
    selecting), and no (B, chunk, N) block is ever allocated."""
    B, N = xc.shape[0], xc.shape[1]
    tasks = [(b, r0, r1) for b in range(B) for r0, r1 in row_splits(N, -(-workers // B))]
    if workers <= 1 or len(tasks) <= 1 or B * N * N < _MIN_PARALLEL:
        for b, r0, r1 in tasks:
            _native_task(xc, xt, sq, ranks, out, b, r0, r1, rows)
        return
    pool = get_pool(workers)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers are the parallelism: no OpenMP team per matmul
    try:
        futures = [
            pool.submit(_native_task, xc, xt, sq, ranks, out, b, r0, r1, rows)
            for b, r0, r1 in tasks
        ]
        for f in futures:
            f.result()
    finally:
        torch.set_num_threads(threads)


def _topk_indices(
    x: Tensor,
    kmax: int,
    *,
    chunk_size: int | None,
    method: str = "auto",
    name: str = "knn",
    ranks: Tensor | None = None,
) -> Tensor:
    """Neighbour indices per row, nearest first, self first: (B, N, kmax), or (B, N, len(ranks))
    holding the ``ranks``-th nearest when ``ranks`` (1-D int64, max = kmax − 1) is given."""
    if method not in METHODS:
        raise ValueError(f"{name}: method must be one of {METHODS}; got {method!r}")
    x = x.detach()
    B, N, C = x.shape
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()  # half / bf16 matmuls are emulated (slow) on CPU and too coarse for ranking
    on_cpu_f32 = x.device.type == "cpu" and x.dtype == torch.float32
    if method == "partition" and not on_cpu_f32:
        raise ValueError(
            f"{name}: method='partition' needs a float32 CPU tensor; got {x.dtype} on {x.device}"
        )
    if method == "native" and not (on_cpu_f32 and HAVE_NATIVE):
        raise ValueError(
            f"{name}: method='native' needs the compiled extension pointseg._native._select "
            f"(available: {HAVE_NATIVE}; reinstall with `pip install -e .`) and a float32 CPU "
            f"tensor; got {x.dtype} on {x.device}"
        )
    use_native = method == "native" or (
        method == "auto"
        and on_cpu_f32
        and HAVE_NATIVE
        and not _native_disabled()
        and N >= _NATIVE_MIN_N
        and kmax * 4 <= N
    )
    use_np = not use_native and (
        method == "partition" or (method == "auto" and on_cpu_f32 and kmax * _PARTITION_RATIO > N)
    )
    xc = x - x.mean(dim=1, keepdim=True)  # (B, N, C) centred: avoids cancellation
    xt = xc.transpose(1, 2).contiguous()  # (B, C, N)
    sq = xc.pow(2).sum(dim=-1).unsqueeze(1)  # (B, 1, N)
    if x.device.type != "meta" and not bool(torch.isfinite(sq).all()):
        raise ValueError(
            f"{name}: squared norms of x (shape {tuple(x.shape)}) overflow {x.dtype}; "
            "rescale the features"
        )
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"{name}: chunk_size must be >= 1; got {chunk_size}")
    workers = max(1, torch.get_num_threads())
    if bf16_selected(x, kmax, method):
        return _bf16_indices(xc, sq, kmax, ranks, chunk_size, workers)
    if use_native:
        # Only the requested ranks are written: (B, N, len(ranks)), never (B, N, kmax).
        r_np = (
            np.arange(kmax, dtype=np.int64)
            if ranks is None
            else np.ascontiguousarray(ranks.cpu().numpy(), dtype=np.int64)
        )
        out = torch.empty(B, N, len(r_np), dtype=torch.long)
        rows = chunk_size if chunk_size is not None else max(1, _NATIVE_BLOCK_BYTES // (4 * N))
        _native_graph(xc, xt, sq, r_np, out.numpy(), rows, workers)
        return out
    if chunk_size is None:
        chunk_size = default_chunk_size(N, B)
    out = torch.empty(B, N, kmax, dtype=torch.long, device=x.device)
    out_np = out.numpy() if use_np else None  # (B, N, kmax) view: workers write in place
    # one score buffer for every chunk (not one ~16 MB allocation per chunk)
    buf = torch.empty(B * min(chunk_size, N) * N, dtype=xc.dtype, device=xc.device)
    for start in range(0, N, chunk_size):
        stop = min(N, start + chunk_size)
        s = _scores_chunk(xc, xt, sq, start, stop, buf)  # (B, m, N)
        if use_np:
            # Blocks (rows of one batch element) are contiguous in both s and out; no torch op
            # runs between the distance matmuls, so torch's OpenMP threads are not woken
            # (idle OpenMP workers spin and would steal cores from the numpy workers).
            s_np = s.numpy()
            pieces = row_splits(stop - start, -(-workers // B))  # ceil(workers / B) per element
            blocks = [
                (s_np[b, r0:r1], out_np[b, start + r0 : start + r1])
                for b in range(B)
                for r0, r1 in pieces
            ]
            _run_blocks(blocks, kmax, workers)
        else:
            out[:, start:stop] = s.topk(kmax, dim=-1, largest=False, sorted=True).indices
    if ranks is not None:
        return out.index_select(-1, ranks.to(device=out.device, dtype=torch.long))
    return out


def _bf16_indices(xc, sq, kmax: int, ranks, chunk_size, workers: int) -> Tensor:
    """The bf16-candidate path (pointseg.graph.bf16): the compiled kernel on CPU float32 where
    its sampled threshold applies, else the torch implementation (any device)."""
    from pointseg.graph import bf16

    B, N, _ = xc.shape
    if xc.dtype != torch.float64:
        xc, sq = xc.float(), sq.float()
    if (xc.device.type == "cpu" and xc.dtype == torch.float32 and HAVE_RERANK
            and N >= 4 * 256 and kmax * 4 <= N):  # fmt: skip
        r_np = (np.arange(kmax, dtype=np.int64) if ranks is None
                else np.ascontiguousarray(ranks.cpu().numpy(), dtype=np.int64))  # fmt: skip
        out = torch.empty(B, N, len(r_np), dtype=torch.long)
        rows = chunk_size if chunk_size is not None else max(1, _NATIVE_BLOCK_BYTES // (2 * N))
        last_bf16_stats.clear()
        last_bf16_stats.update(bf16.bf16_graph_cpu(xc, sq, r_np, out.numpy(), rows, workers))
        return out
    stats: dict = {}
    out = bf16.bf16_knn_torch(xc, sq, kmax, chunk_size=chunk_size, stats=stats)
    last_bf16_stats.clear()
    last_bf16_stats.update(stats)
    if ranks is not None:
        return out.index_select(-1, ranks.to(device=out.device, dtype=torch.long))
    return out


@torch.no_grad()
def knn(x: Tensor, k: int, *, chunk_size: int | None = None, method: str = "auto") -> Tensor:
    """Exact kNN graph of ``x`` (B, N, C): indices (B, N, k) int64, self at rank 0, nearest first.

    Args:
        x: point coordinates or features, channels last. No gradient flows through the graph.
        k: neighbours per point, self included (``1 <= k <= N``).
        chunk_size: query rows per chunk (memory O(B · chunk · N)); default ~16 MB of scores.
        method: ``"topk"`` (torch.topk, any device), ``"partition"`` (numpy SIMD partition,
            CPU float32 only), ``"native"`` (the compiled kernel, CPU float32 only), or
            ``"auto"`` (native on CPU float32 when built, ``POINTSEG_NO_NATIVE`` is unset,
            N >= 1024 and k <= N / 4; else partition unless k <= N / 256; else topk). All give the exact k nearest; native and partition break exact ties by
            the lower index, topk may order exactly tied distances differently.

    Raises:
        ValueError: x not (B, N, C) / empty / N < k / k < 1 / non-finite values.
    """
    check_points(x, k, "knn")
    return _topk_indices(x, int(k), chunk_size=chunk_size, method=method, name="knn")


@torch.no_grad()
def knn_ranks(
    x: Tensor, ranks: Tensor, *, chunk_size: int | None = None, method: str = "auto"
) -> Tensor:
    """Neighbours of ``x`` (B, N, C) at the given distance ranks: (B, N, len(ranks)).

    ``ranks`` (k,) int64 are 0-based positions in the nearest-first list (0 = self); result
    column ``r`` holds the ``ranks[r]``-th nearest neighbour. Used by dilated kNN (ranks
    0, d, …, (k−1)d) and by stochastic dilation, whose random ranks can be drawn once and
    replayed to recompute the identical graph.
    """
    ranks = torch.as_tensor(ranks)
    if ranks.dim() != 1 or ranks.numel() == 0 or ranks.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"knn_ranks: ranks must be a non-empty 1-D integer tensor (k,); got shape "
            f"{tuple(ranks.shape)} dtype {ranks.dtype}"
        )
    if int(ranks.min()) < 0:
        raise ValueError(f"knn_ranks: ranks must be >= 0; got min {int(ranks.min())}")
    kmax = int(ranks.max()) + 1
    check_points(x, kmax, "knn_ranks")
    return _topk_indices(
        x, kmax, chunk_size=chunk_size, method=method, name="knn_ranks", ranks=ranks.long()
    )
