"""The fused neighbour pass of EdgeConv: ext_i = max_j p_j and the BatchNorm statistics of the
edge values, streamed over row chunks, never storing an (N, k, C) edge tensor.

Steps 3 and 5 of the algebra in `pointseg.nn.edge_conv`: training-mode statistics are computed by
streaming over row chunks of the (rows, k, C) edge values (recomputed in backward instead of
stored); the neighbour pass runs in the compiled kernel ``pointseg._native._edge`` on CPU float32
tensors, else in the chunked torch body, which computes the same values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
from torch.nn import functional as F

from pointseg import _native as _native_switch

try:  # the compiled neighbour pass (optional: setup.py builds it when a C compiler exists)
    from pointseg._native import _edge as _native_edge
except ImportError:  # pragma: no cover - exercised on machines without a compiler
    _native_edge = None

HAVE_NATIVE = _native_edge is not None

# Elements of the (rows, k, C) transient edge tensor processed at once: ~4 MB of float32 keeps the
# several elementwise passes over a chunk in cache (measured ~2x faster than 16 MB chunks).
_CHUNK_ELEMENTS = 1 << 20


def flat_index(idx: torch.Tensor, num_points: int) -> torch.Tensor:
    """(B, N, k) per-batch neighbour indices → (B·N, k) indices into the flattened (B·N) rows."""
    offsets = torch.arange(idx.shape[0], device=idx.device).view(-1, 1, 1) * num_points
    return (idx + offsets).reshape(-1, idx.shape[-1])


def _chunk_rows(k: int, channels: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, k * channels))


_POOL: ThreadPoolExecutor | None = None


@contextlib.contextmanager
def single_threaded_ops() -> Iterator[int]:
    """Run torch ops single-threaded inside; yields the caller's thread count (our worker count).

    Why: every intra-op parallel region ends in a barrier, and on a shared machine a descheduled
    OpenMP thread stalls each one by a scheduler tick: measured here with 2 threads under load,
    a 1M-element clamp_ took 7.8 ms instead of 0.1 ms. The layer issues many mid-sized ops, so it
    runs them single-threaded and parallelises over row chunks with its own workers instead.
    """
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield threads
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


def _for_chunks(rows: int, step: int, body: Callable[[int, int, int], None], workers: int) -> int:
    """Run ``body(r0, r1, slot)`` over row chunks; returns the number of slots used.

    With workers > 1 the chunks are dealt round-robin to Python threads running (single-threaded)
    torch ops, which release the GIL; workers never wait on each other until the final join.
    `slot` indexes per-worker accumulators (fixed assignment: deterministic for a worker count).
    """
    global _POOL
    ranges = [(r0, min(rows, r0 + step)) for r0 in range(0, rows, step)]
    workers = min(workers, len(ranges))
    if workers <= 1:
        for r0, r1 in ranges:
            body(r0, r1, 0)
        return 1
    if _POOL is None or _POOL._max_workers < workers:
        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pointseg-edge")

    def run(slot: int) -> None:
        for r0, r1 in ranges[slot::workers]:
            body(r0, r1, slot)

    for future in [_POOL.submit(run, slot) for slot in range(workers)]:
        future.result()
    return workers


def native_disabled() -> bool:
    """``POINTSEG_NO_NATIVE=1`` (read at every call) makes the layer use its torch ops (A/B runs)."""
    return _native_switch.disabled()


def _use_native(p: torch.Tensor, fidx: torch.Tensor, *others: torch.Tensor | None) -> bool:
    """Whether the compiled kernel takes these inputs: CPU float32 (R, C) tensors, int64 fidx
    (R, k ≥ 1), float32 per-channel vectors; anything else (GPU, float64, half, …) runs the torch
    body. Non-contiguous inputs are made contiguous by the caller (a copy, not a fallback)."""
    if _native_edge is None or native_disabled():
        return False
    if p.device.type != "cpu" or p.dtype != torch.float32 or p.dim() != 2:
        return False
    if fidx.device.type != "cpu" or fidx.dtype != torch.long or fidx.dim() != 2:
        return False
    if fidx.shape[0] != p.shape[0] or fidx.shape[1] < 1:
        return False
    return all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32) for t in others)


def _np(t: torch.Tensor | None):
    """Contiguous numpy view (None stays None); detach: the kernel runs outside autograd."""
    return None if t is None else t.detach().contiguous().numpy()


def extreme_stats_forward(
    a, p, fidx, sgn, stats: int, slope: float, workers: int = 1, *, total=None
):
    """Chunked forward of `_EdgeExtremeStats` (no autograd): ext (R, C), mean (C,) | None, var | None.

    Runs the compiled kernel ``pointseg._native._edge`` per chunk when built and the inputs are CPU
    float32 (see `_use_native`; ``POINTSEG_NO_NATIVE=1`` forces the torch body below).
    """
    rows, channels = p.shape
    k = fidx.shape[1]
    step = _chunk_rows(k, channels)
    native = a.shape == p.shape and _use_native(p, fidx, a, sgn)
    ext = p.new_empty(rows, channels)
    if stats:
        # Shift by a per-point estimate of the mean (self edges) so the one-pass variance
        # E[(z − c)²] − (E[z] − c)² does not cancel catastrophically in float32.
        shift = a + p
        if stats == 2:
            # == where(z > 0, z, z·slope) bit for bit; torch.where with a bool mask took 2.9 ms
            # of a 6 ms native forward here (R = 8192, C = 64), leaky_relu 0.08 ms.
            shift = F.leaky_relu(shift, slope, inplace=True)
        shift = shift.mean(0)
    slots = max(1, workers)
    s1 = [torch.zeros(channels, dtype=torch.float64, device=p.device) for _ in range(slots)]
    s2 = [torch.zeros(channels, dtype=torch.float64, device=p.device) for _ in range(slots)]

    if native:
        arrays = (_np(a), _np(p), _np(fidx), _np(sgn), stats, float(slope))
        shift_np = _np(shift) if stats else None
        ext_np = ext.numpy()
        s1_np, s2_np = [t.numpy() for t in s1], [t.numpy() for t in s2]

        def body(r0: int, r1: int, slot: int) -> None:
            # One pass per row with its k neighbour rows in L1 (pointseg/_native/edge.c).
            _native_edge.forward(*arrays, shift_np, r0, r1, ext_np, s1_np[slot], s2_np[slot])

    else:
        mixed = sgn is not None and not bool((sgn > 0).all())
        use_min = mixed and bool((sgn < 0).all())
        mixed = mixed and not use_min

        def body(r0: int, r1: int, slot: int) -> None:
            g = p.index_select(0, fidx[r0:r1].reshape(-1)).view(r1 - r0, k, channels)  # (r, k, C)
            # amax/amin without indices: ~8x faster than max(dim) returning arg-max indices.
            if mixed:
                lo, hi = torch.aminmax(g, dim=1)  # (r, C) each
                ext[r0:r1] = torch.where(sgn > 0, hi, lo)
            elif use_min:
                torch.amin(g, dim=1, out=ext[r0:r1])
            else:
                torch.amax(g, dim=1, out=ext[r0:r1])
            if stats:
                z = g.add_(a[r0:r1].unsqueeze(1))  # (r, k, C) edge pre-activations, in place
                if stats == 2:
                    z = torch.where(z > 0, z, z * slope) if slope else z.clamp_(min=0)
                z = z.sub_(shift)
                # float32 (pairwise) sums per chunk, accumulated across chunks in float64.
                s1[slot] += z.sum((0, 1)).double()
                s2[slot] += z.square_().sum((0, 1)).double()

    _for_chunks(rows, step, body, workers)
    if not stats:
        return ext, None, None
    count = rows * k
    if total is not None:
        # Synchronised BN (DDP): the moments of every rank's edges. Local shifted sums → raw sums
        # Σz = S1 + n·c, Σz² = S2 + 2c·S1 + n·c² in float64, summed over ranks, divided by the
        # global edge count `total`.
        c64, t1, t2 = shift.double(), sum(s1), sum(s2)
        raw = torch.cat([t1 + count * c64, t2 + 2 * c64 * t1 + count * c64.square()])
        torch.distributed.all_reduce(raw)
        mean64 = raw[:channels] / total
        var = (raw[channels:] / total - mean64.square()).clamp_(min=0).to(p.dtype)
        return ext, mean64.to(p.dtype), var
    m1 = sum(s1) / count
    mean = (shift.double() + m1).to(p.dtype)
    var = (sum(s2) / count - m1.square()).clamp_(min=0).to(p.dtype)
    return ext, mean, var


def extreme_stats_backward(
    a,
    p,
    fidx,
    ext,
    mean,
    g_ext,
    g_mean,
    g_var,
    stats: int,
    slope: float,
    workers: int = 1,
    *,
    total=None,
):
    """Chunked backward: gradients (grad_a or None, grad_p) of ext, mean, var w.r.t. a and p.

    Edge values are recomputed per chunk. The extreme's gradient goes to the neighbours attaining
    it (split evenly between exact ties, like ``torch.amax``), so no arg-max is stored. Compiled
    kernel or torch body as in `extreme_stats_forward`; both compute the same expressions.
    """
    rows, channels = p.shape
    k = fidx.shape[1]
    stats = stats if (g_mean is not None or g_var is not None) else 0
    if stats:
        count = rows * k if total is None else total  # global edge count under synchronised BN
        gm = (g_mean if g_mean is not None else torch.zeros_like(mean)) / count
        gv = (g_var if g_var is not None else torch.zeros_like(mean)) * (2.0 / count)
        c0 = gm - gv * mean  # (C,)
    native = (
        a.shape == p.shape
        and ext.shape == p.shape
        and (g_ext is None or g_ext.shape == p.shape)
        and _use_native(p, fidx, a, ext, g_ext, *((c0, gv) if stats else ()))
    )
    if native:  # contiguous whatever the layout of p
        grad_p = p.new_zeros(rows, channels)
        grad_a = p.new_zeros(rows, channels) if stats else None
    else:
        grad_p = torch.zeros_like(p)
        grad_a = torch.zeros_like(a) if stats else None
    step = _chunk_rows(k, channels)
    # One grad_p per worker: index_add_ from several threads into one tensor would race.
    grad_ps = [grad_p] + [torch.zeros_like(grad_p) for _ in range(max(1, workers) - 1)]

    if native:
        if g_ext is None and not stats:
            return grad_a, grad_p  # nothing flows back
        arrays = (_np(a), _np(p), _np(fidx), _np(ext), _np(g_ext))
        arrays += (_np(c0), _np(gv)) if stats else (None, None)
        grad_a_np = None if grad_a is None else grad_a.numpy()
        grad_p_np = [t.numpy() for t in grad_ps]

        def body(r0: int, r1: int, slot: int) -> None:
            _native_edge.backward(*arrays, stats, float(slope), r0, r1, grad_a_np, grad_p_np[slot])

    else:

        def body(r0: int, r1: int, slot: int) -> None:
            fi = fidx[r0:r1].reshape(-1)
            g = p.index_select(0, fi).view(r1 - r0, k, channels)  # (r, k, C)
            d = None
            if stats:
                z = g.add(a[r0:r1].unsqueeze(1))  # (r, k, C)
                # d mean/dz = 1/M, d var/dz = 2 (f(z) − mean)/M, times f'(z). Where f'(z) ≠ 0,
                # f(z) = f'(z)·z for (leaky) ReLU, so d = f'(z)·(gm − gv·mean) + f'(z)²·gv·z.
                if stats == 2:
                    # Float 0/1 masks: comparisons into a float `out` are far faster on CPU than
                    # bool masks that later need converting.
                    deriv = torch.gt(z, 0, out=torch.empty_like(z))  # f'(z) for ReLU
                    if slope:
                        deriv = deriv.mul_(1.0 - slope).add_(slope)
                        z = z.mul_(deriv)  # f(z)
                    d = torch.addcmul(c0, z, gv).mul_(deriv)
                else:
                    d = torch.addcmul(c0, z, gv)
                grad_a[r0:r1] = d.sum(1)
            if g_ext is not None:
                # (r, k, C) 0/1: neighbours attaining the extreme; ties share the gradient evenly.
                hit = torch.eq(g, ext[r0:r1].unsqueeze(1), out=torch.empty_like(g))
                share = (g_ext[r0:r1] / hit.sum(1)).unsqueeze(1)  # (r, 1, C)
                d = hit.mul_(share) if d is None else d.addcmul_(hit, share)
            if d is not None:
                grad_ps[slot].index_add_(0, fi, d.view(-1, channels))

    used = _for_chunks(rows, step, body, workers)
    for extra in grad_ps[1:used]:
        grad_p += extra
    return grad_a, grad_p


class _EdgeExtremeStats(torch.autograd.Function):
    """ext_i = max_j p_j (min_j where sgn < 0) and, optionally, BN statistics of f(a_i + p_j).

    Inputs (flattened over the batch): a, p (R, C); fidx (R, k) rows of p; sgn (C,) ±1 or None
    (None = all +1); stats: 0 = none, 1 = f = identity, 2 = f = leaky ReLU with `slope` (0 → ReLU).
    Outputs: ext (R, C), mean (C,), biased var (C,) (mean = var = empty when stats == 0).
    Saved for backward: a, p, fidx, ext, mean: per-point tensors only.
    """

    @staticmethod
    def forward(ctx, a, p, fidx, sgn, stats: int, slope: float):  # type: ignore[override]
        with single_threaded_ops() as workers:
            return _EdgeExtremeStats._forward(ctx, workers, a, p, fidx, sgn, stats, slope)

    @staticmethod
    def _forward(ctx, workers, a, p, fidx, sgn, stats, slope):
        ext, mean, var = extreme_stats_forward(a, p, fidx, sgn, stats, slope, workers)
        if not stats:
            mean = var = p.new_empty(0)
            ctx.mark_non_differentiable(mean, var)
        ctx.save_for_backward(a, p, fidx, ext, mean)
        ctx.stats, ctx.slope = stats, slope
        return ext, mean, var

    @staticmethod
    def backward(ctx, g_ext, g_mean, g_var):  # type: ignore[override]
        with single_threaded_ops() as workers:
            return _EdgeExtremeStats._backward(ctx, workers, g_ext, g_mean, g_var)

    @staticmethod
    def _backward(ctx, workers, g_ext, g_mean, g_var):
        a, p, fidx, ext, mean = ctx.saved_tensors
        if not ctx.stats:
            g_mean = g_var = None
        grad_a, grad_p = extreme_stats_backward(
            a, p, fidx, ext, mean, g_ext, g_mean, g_var, ctx.stats, ctx.slope, workers
        )
        return grad_a, grad_p, None, None, None, None


def edge_extreme_stats(
    a: torch.Tensor,
    p: torch.Tensor,
    idx: torch.Tensor,
    sgn: torch.Tensor | None = None,
    *,
    stats: int = 0,
    slope: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused neighbour extreme + edge statistics on dense graphs (see `_EdgeExtremeStats`).

    a, p: (B, N, C); idx: (B, N, k). Returns ext (B, N, C) = sgn·max_j(sgn·p_j) and per-channel mean,
    biased var of f(a_i + p_j) over all B·N·k edges (f per `stats`; empty tensors when stats == 0).
    """
    b, n, c = p.shape
    fidx = flat_index(idx, n)
    ext, mean, var = _EdgeExtremeStats.apply(
        a.reshape(b * n, c), p.reshape(b * n, c), fidx, sgn, stats, slope
    )
    return ext.view(b, n, c), mean, var
