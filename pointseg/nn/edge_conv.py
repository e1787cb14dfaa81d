"""EdgeConv (Wang et al., "Dynamic Graph CNN for Learning on Point Clouds", TOG 2019) on dense kNN graphs.

Update rule, for a neighbour list N(i) (kNN graphs include i itself at rank 0):

    h_i' = max_{j ∈ N(i)}  σ( W [h_i, h_j − h_i] + b )

where σ is "act then BatchNorm" (``order="conv_act_norm"``, the original PyTorch deep_gcns_torch) or
"BatchNorm then act" (``order="conv_norm_act"``, the original TensorFlow code). BatchNorm statistics
are taken over all B·N·k edges, as the original code does with ``BatchNorm2d`` on ``(B, C, N, k)``.

The fused path never builds the 2C-wide edge features and never stores an N·k·C tensor:

1. Per point: a_i = (W₁ − W₂) h_i + b and p_i = W₂ h_i, since W [h_i, h_j − h_i] = (W₁ − W₂) h_i + W₂ h_j.
   So the edge pre-activation is z_ij = a_i + p_j.
2. BatchNorm is a per-channel affine map y = s·x + t with s = γ/√(var + eps); together with a monotone
   non-decreasing activation it is monotone in z per channel (increasing where s ≥ 0, decreasing where
   s < 0; the sign of s is the sign of γ). Hence the max over neighbours commutes with it:
   max_j σ(a_i + p_j) = σ(a_i + ext_j p_j) with ext = max (s ≥ 0) or min (s < 0).
3. Training-mode statistics (mean and biased variance of z_ij, or of act(z_ij) for conv_act_norm) are
   computed by streaming over row chunks of the (rows, k, C) edge values, which are recomputed in
   backward instead of stored.
4. For relu / leaky_relu / identity the whole layer is one autograd node (`_EdgeConvLayer`) that
   saves only its input x (alive anyway) and the flat neighbour index: a and p are recomputed by
   two small matmuls in backward, ext and the edge values chunk by chunk. Other monotone activations use per-point autograd
   ops around `edge_extreme_stats` (saves a, p, ext). Memory per layer is O(B·N·C), not O(B·N·k·C).

5. The neighbour pass (extreme, statistics and their gradients per row chunk) runs in the compiled
   kernel ``pointseg._native._edge`` (pointseg/_native/edge.c, built by setup.py when a C compiler
   exists) on CPU float32 tensors: one pass per row with its k neighbour rows in L1 instead of
   5–10 torch passes over an (r, k, C) temporary. Without it, for other dtypes / devices, or with
   ``POINTSEG_NO_NATIVE=1`` (read at every call), the chunked torch body computes the same values.

Gradient of the max: it goes to the neighbour(s) attaining it; exact ties between distinct
neighbours (bit-identical features, e.g. duplicated points) share it evenly, as ``torch.amax``
does, where ``max(dim).values`` gives it all to one of them. Both are valid subgradients; for
duplicated points the parameter gradients are identical, and repeated indices of the same
neighbour behave exactly like the reference.

Running statistics are updated exactly like ``nn.BatchNorm1d`` (momentum or cumulative average,
unbiased variance for ``running_var``, ``num_batches_tracked``). `edge_conv_reference` is the textbook
gather → Linear → norm/act → max formulation used by tests and the benchmark baseline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn
from torch.nn import functional as F

from pointseg import _native as _native_switch
from pointseg.nn.mlp import (
    MONOTONE_ACTS,
    act_name,
    apply_norm_act,
    check_order,
    create_act,
    create_norm,
    norm_name,
    sync_active,
)

try:  # the compiled neighbour pass (optional: setup.py builds it when a C compiler exists)
    from pointseg._native import _edge as _native_edge
except ImportError:  # pragma: no cover - exercised on machines without a compiler
    _native_edge = None

HAVE_NATIVE = _native_edge is not None

# Activations the single-node layer (`_EdgeConvLayer`) differentiates by hand.
_LAYER_ACTS = ("relu", "leaky_relu", "none")

# Elements of the (rows, k, C) transient edge tensor processed at once: ~4 MB of float32 keeps the
# several elementwise passes over a chunk in cache (measured ~2x faster than 16 MB chunks).
_CHUNK_ELEMENTS = 1 << 20


def check_conv_input(x: torch.Tensor, idx: torch.Tensor, in_channels: int, name: str) -> None:
    """Validate ``x (B, N, in_channels)`` and ``idx (B, N, k)`` int64 with values in [0, N)."""
    if x.dim() != 3 or x.shape[-1] != in_channels:
        raise ValueError(
            f"{name}: x must be (B, N, {in_channels}) channels-last, got shape {tuple(x.shape)}"
        )
    if idx.dim() != 3 or idx.shape[:2] != x.shape[:2]:
        raise ValueError(
            f"{name}: idx must be (B, N, k) = ({x.shape[0]}, {x.shape[1]}, k) matching x, "
            f"got shape {tuple(idx.shape)}"
        )
    if idx.dtype != torch.long:
        raise ValueError(f"{name}: idx must be int64 (torch.long), got {idx.dtype}")
    if idx.numel():
        # One single-threaded pass: under shared-CPU load a 2-thread reduction costs ~8 ms.
        with _single_threaded_ops():
            lo, hi = (int(v) for v in torch.aminmax(idx))
        if lo < 0 or hi >= x.shape[1]:
            raise ValueError(
                f"{name}: idx values must lie in [0, N={x.shape[1]}), got range [{lo}, {hi}]"
            )


def flat_index(idx: torch.Tensor, num_points: int) -> torch.Tensor:
    """(B, N, k) per-batch neighbour indices → (B·N, k) indices into the flattened (B·N) rows."""
    offsets = torch.arange(idx.shape[0], device=idx.device).view(-1, 1, 1) * num_points
    return (idx + offsets).reshape(-1, idx.shape[-1])


def _chunk_rows(k: int, channels: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, k * channels))


_POOL: ThreadPoolExecutor | None = None


@contextlib.contextmanager
def _single_threaded_ops() -> Iterator[int]:
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


def _extreme_stats_forward(
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


def _extreme_stats_backward(
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
    kernel or torch body as in `_extreme_stats_forward`; both compute the same expressions.
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
        with _single_threaded_ops() as workers:
            return _EdgeExtremeStats._forward(ctx, workers, a, p, fidx, sgn, stats, slope)

    @staticmethod
    def _forward(ctx, workers, a, p, fidx, sgn, stats, slope):
        ext, mean, var = _extreme_stats_forward(a, p, fidx, sgn, stats, slope, workers)
        if not stats:
            mean = var = p.new_empty(0)
            ctx.mark_non_differentiable(mean, var)
        ctx.save_for_backward(a, p, fidx, ext, mean)
        ctx.stats, ctx.slope = stats, slope
        return ext, mean, var

    @staticmethod
    def backward(ctx, g_ext, g_mean, g_var):  # type: ignore[override]
        with _single_threaded_ops() as workers:
            return _EdgeExtremeStats._backward(ctx, workers, g_ext, g_mean, g_var)

    @staticmethod
    def _backward(ctx, workers, g_ext, g_mean, g_var):
        a, p, fidx, ext, mean = ctx.saved_tensors
        if not ctx.stats:
            g_mean = g_var = None
        grad_a, grad_p = _extreme_stats_backward(
            a, p, fidx, ext, mean, g_ext, g_mean, g_var, ctx.stats, ctx.slope, workers
        )
        return grad_a, grad_p, None, None, None, None


def _act(v: torch.Tensor, kind: str, slope: float) -> torch.Tensor:
    if kind == "relu":
        return v.clamp(min=0)
    if kind == "leaky_relu":
        # == where(v > 0, v, v·slope) bit for bit; torch.where with a bool mask is ~35x slower
        return F.leaky_relu(v, slope)
    return v


def _act_grad(grad: torch.Tensor, v: torch.Tensor, kind: str, slope: float) -> torch.Tensor:
    """grad · f'(v) for f = relu / leaky_relu / identity."""
    if kind == "none":
        return grad
    mask = torch.gt(v, 0, out=torch.empty_like(v))  # float 0/1
    if kind == "leaky_relu":
        mask = mask.mul_(1.0 - slope).add_(slope)
    return mask.mul_(grad)


class _EdgeConvLayer(torch.autograd.Function):
    """A whole fused EdgeConv layer (Linear + BN + relu/leaky_relu/identity + max) in one node.

    Saves only the layer input x (alive anyway as the previous layer's output), the flat index
    and per-channel vectors; a and p are recomputed in backward by two small matmuls, ext and the
    edge values chunk by chunk. cfg = (order, act, slope, has_norm, batch_stats,
    eps). Returns out (R, C_out) and the batch mean / biased var (for the running statistics;
    empty when not computed).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, gamma, beta, fidx, running_mean, running_var, cfg):  # type: ignore[override]
        with _single_threaded_ops() as workers:
            return _EdgeConvLayer._forward(
                ctx, workers, x, weight, bias, gamma, beta, fidx, running_mean, running_var, cfg
            )

    @staticmethod
    def _forward(ctx, workers, x, weight, bias, gamma, beta, fidx, running_mean, running_var, cfg):
        order, act, slope, has_norm, batch_stats, eps, total = cfg
        c = x.shape[1]
        w_a, w_p = weight[:, :c] - weight[:, c:], weight[:, c:]  # (C_out, C) each
        a = F.linear(x, w_a, bias)  # (R, C_out): (W₁ − W₂) h_i + b
        p = F.linear(x, w_p)  # (R, C_out): W₂ h_j
        stats = 0
        if has_norm and batch_stats:
            stats = 2 if order == "conv_act_norm" and act != "none" else 1
        # BN scale γ/√(var+eps) has the sign of γ: take the min over neighbours where it is < 0.
        sgn = None
        if has_norm and gamma is not None:
            sgn = torch.where(gamma >= 0, 1.0, -1.0).to(p.dtype)
        ext, mean, var = _extreme_stats_forward(
            a, p, fidx, sgn, stats, slope, workers, total=total if stats else None
        )
        u = a.add_(ext)  # (R, C_out): a_i + ext_j p_j
        inv = None
        if has_norm:
            if not batch_stats:
                mean, var = running_mean, running_var
            inv = torch.rsqrt(var + eps)  # (C_out,)
            scale = inv * gamma if gamma is not None else inv
            shift = -mean * scale
            if beta is not None:
                shift = shift + beta
            if order == "conv_norm_act":
                out = _act(u.mul_(scale).add_(shift), act, slope)
            else:
                out = _act(u, act, slope).mul_(scale).add_(shift)
        else:
            out = _act(u, act, slope)
        # ext is not saved: recomputing it (one gather + amax per chunk) costs less than keeping
        # B·N·C floats per layer alive until backward.
        ctx.save_for_backward(x, weight, bias, gamma, beta, fidx, mean, inv)
        ctx.cfg = cfg
        if stats:
            mean_out, var_out = mean.detach().clone(), var.detach().clone()
        else:
            mean_out = var_out = x.new_empty(0)
        ctx.mark_non_differentiable(mean_out, var_out)
        return out, mean_out, var_out

    @staticmethod
    def backward(ctx, grad, _g_mean, _g_var):  # type: ignore[override]
        with _single_threaded_ops() as workers:
            return _EdgeConvLayer._backward(ctx, workers, grad)

    @staticmethod
    def _backward(ctx, workers, grad):
        x, weight, bias, gamma, beta, fidx, mean, inv = ctx.saved_tensors
        order, act, slope, has_norm, batch_stats, eps, total = ctx.cfg
        c = x.shape[1]
        w_a, w_p = weight[:, :c] - weight[:, c:], weight[:, c:]
        a = F.linear(x, w_a, bias)  # recomputed (R, C_out)
        p = F.linear(x, w_p)
        sgn = None
        if has_norm and gamma is not None:
            sgn = torch.where(gamma >= 0, 1.0, -1.0).to(p.dtype)
        ext = _extreme_stats_forward(a, p, fidx, sgn, 0, 0.0, workers)[0]  # (R, C_out)
        u = a + ext
        g_gamma = g_beta = g_mean = g_var = None
        stats = 0
        if has_norm:
            scale = inv * gamma if gamma is not None else inv
            if order == "conv_norm_act":
                shift = -mean * scale
                if beta is not None:
                    shift = shift + beta
                dv = _act_grad(grad, u * scale + shift, act, slope)  # (R, C_out)
                g_scale_direct = (dv * u).sum(0)
                g_shift = dv.sum(0)
                du = dv * scale
            else:
                q = _act(u, act, slope)
                g_scale_direct = (grad * q).sum(0)
                g_shift = grad.sum(0)
                du = _act_grad(grad * scale, u, act, slope)
            # shift = β − mean · scale, scale = γ · inv, inv = (var + eps)^(-1/2)
            g_scale = g_scale_direct - g_shift * mean
            if gamma is not None:
                g_gamma = g_scale * inv
                g_inv = g_scale * gamma
            else:
                g_inv = g_scale
            g_beta = g_shift if beta is not None else None
            if batch_stats:
                stats = 2 if order == "conv_act_norm" and act != "none" else 1
                g_mean = -g_shift * scale
                g_var = g_inv * (-0.5) * inv.pow(3)
                if total is not None:
                    # Synchronised BN: the shared mean / var receive every rank's loss gradient
                    # (what nn.SyncBatchNorm's backward all-reduces too).
                    g = torch.cat([g_mean, g_var])
                    torch.distributed.all_reduce(g)
                    g_mean, g_var = g[: g_mean.numel()], g[g_mean.numel() :]
        else:
            du = _act_grad(grad, u, act, slope)
        grad_a_stats, grad_p = _extreme_stats_backward(
            a,
            p,
            fidx,
            ext,
            mean,
            du,
            g_mean,
            g_var,
            stats,
            slope,
            workers,
            total=total if stats else None,
        )
        grad_a = du if grad_a_stats is None else du + grad_a_stats
        grad_x = grad_a @ w_a + grad_p @ w_p if ctx.needs_input_grad[0] else None  # (R, C)
        g_wa, g_wp = grad_a.t() @ x, grad_p.t() @ x  # (C_out, C)
        grad_weight = torch.cat([g_wa, g_wp - g_wa], dim=1)  # W₁ = W_a + W_p, W₂ = W_p
        grad_bias = grad_a.sum(0) if bias is not None else None
        return grad_x, grad_weight, grad_bias, g_gamma, g_beta, None, None, None, None


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


def neighbor_max(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """max_{j ∈ N(i)} x_j per channel: x (B, N, C), idx (B, N, k) → (B, N, C); stores no edge tensor."""
    return edge_extreme_stats(x, x, idx)[0]


def gather_neighbors(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x_j for j ∈ N(i): x (B, N, C), idx (B, N, k) → (B, N, k, C)."""
    b, n, c = x.shape
    fidx = flat_index(idx, n).reshape(-1)
    return x.reshape(b * n, c).index_select(0, fidx).view(b, n, idx.shape[-1], c)


def edge_conv_reference(
    x: torch.Tensor,
    idx: torch.Tensor,
    lin: nn.Linear,
    norm: nn.Module | None,
    act: nn.Module,
    order: str = "conv_act_norm",
) -> torch.Tensor:
    """Textbook EdgeConv: gather [h_i, h_j − h_i] (B, N, k, 2C) → Linear → norm/act → max over k.

    This is what the original code computes (and stores for autograd): ~5 N·k·C-sized tensors per
    layer. Norm statistics are over all B·N·k edges (norm is applied to a (B, N·k, C_out) view).
    """
    b, n, c = x.shape
    k = idx.shape[-1]
    xj = gather_neighbors(x, idx)  # (B, N, k, C)
    xi = x.unsqueeze(2).expand(b, n, k, c)  # (B, N, k, C)
    z = lin(torch.cat([xi, xj - xi], dim=-1))  # (B, N, k, C_out)
    y = apply_norm_act(z.reshape(b, n * k, -1), norm, act, order)  # (B, N·k, C_out)
    return y.view(b, n, k, -1).max(dim=2).values


class EdgeConv(nn.Module):
    r"""EdgeConv on a dense kNN graph, fused (default) or textbook (``fused=False``).

    Paper: Wang et al., "Dynamic Graph CNN for Learning on Point Clouds", TOG 2019; as used by
    DeepGCNs (Li et al., ICCV 2019). Update rule:
    :math:`h_i' = \max_{j \in N(i)} \sigma(W [h_i, h_j - h_i] + b)`, σ = act→norm (``conv_act_norm``)
    or norm→act (``conv_norm_act``).

    Parameters: ``lin`` = ``nn.Linear(2*in, out)`` with input order ``[h_i, h_j − h_i]``; ``norm`` =
    ``nn.BatchNorm1d(out)`` (a channels-last subclass, same state dict) or None.

    Shapes: ``x (B, N, in_channels)``, ``idx (B, N, k)`` int64 → ``(B, N, out_channels)``.

    The fused path applies when norm ∈ {batch, none} and the activation is monotone non-decreasing
    (``MONOTONE_ACTS``); with ``conv_act_norm`` and training-mode BatchNorm the activation must
    also be relu / leaky_relu / none. Otherwise (or with ``fused=False``) the reference path runs.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        order: str = "conv_act_norm",
        norm: str | None = "batch",
        act: str | None = "relu",
        bias: bool = True,
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.order = check_order(order)
        self.norm_type, self.act_type = norm_name(norm), act_name(act)
        self.fused = fused
        self.lin = nn.Linear(2 * in_channels, out_channels, bias=bias or self.norm_type == "none")
        self.norm = create_norm(norm, out_channels)
        self.act = create_act(act)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        if self.norm is not None:
            self.norm.reset_parameters()

    def _fusable(self, batch_stats: bool) -> bool:
        if self.norm_type not in ("batch", "none") or self.act_type not in MONOTONE_ACTS:
            return False
        if self.norm is not None and batch_stats and self.order == "conv_act_norm":
            return self.act_type in ("relu", "leaky_relu", "none")
        return True

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        check_conv_input(x, idx, self.in_channels, "EdgeConv")
        norm = self.norm
        batch_stats = norm is not None and (norm.training or norm.running_mean is None)
        if not (self.fused and self._fusable(batch_stats)):
            return edge_conv_reference(x, idx, self.lin, norm, self.act, self.order)

        if self.act_type in _LAYER_ACTS:
            return self._forward_layer(x, idx, batch_stats)
        if batch_stats and sync_active(norm):
            # other activations under synchronised BN: the textbook path, whose PointBatchNorm
            # synchronises itself (more memory, same result)
            return edge_conv_reference(x, idx, self.lin, norm, self.act, self.order)
        return self._forward_composite(x, idx, batch_stats)

    def _forward_layer(self, x: torch.Tensor, idx: torch.Tensor, batch_stats: bool) -> torch.Tensor:
        """relu / leaky_relu / identity: the whole layer as one autograd node (`_EdgeConvLayer`)."""
        b, n, c = x.shape
        norm = self.norm
        has_norm = norm is not None
        gamma = norm.weight if has_norm and norm.affine else None
        beta = norm.bias if has_norm and norm.affine else None
        slope = float(self.act.negative_slope) if self.act_type == "leaky_relu" else 0.0
        count = idx.numel()  # edges in this batch
        total = None
        if batch_stats and sync_active(norm):
            # Synchronised BN under DDP: statistics over every rank's edges (see PointBatchNorm).
            # a 0-dim float64 tensor, never .item(): no host sync per layer on GPUs
            total = torch.tensor(float(count), dtype=torch.float64, device=x.device)
            torch.distributed.all_reduce(total)
            count = total
        cfg = (
            self.order,
            self.act_type,
            slope,
            has_norm,
            batch_stats,
            float(norm.eps) if has_norm else 0.0,
            total,
        )
        out, mean, var = _EdgeConvLayer.apply(
            x.reshape(b * n, c),
            self.lin.weight,
            self.lin.bias,
            gamma,
            beta,
            flat_index(idx, n),
            norm.running_mean if has_norm else None,
            norm.running_var if has_norm else None,
            cfg,
        )
        if batch_stats:
            self._update_running_stats(mean, var, count)
        return out.view(b, n, self.out_channels)

    def _forward_composite(
        self, x: torch.Tensor, idx: torch.Tensor, batch_stats: bool
    ) -> torch.Tensor:
        """Any monotone act: per-point ops + `edge_extreme_stats`, autograd for the rest."""
        norm = self.norm
        c = self.in_channels
        w_self, w_nb = self.lin.weight[:, :c], self.lin.weight[:, c:]  # (C_out, C) each
        a = F.linear(x, w_self - w_nb, self.lin.bias)  # (B, N, C_out): (W₁ − W₂) h_i + b
        p = F.linear(x, w_nb)  # (B, N, C_out): W₂ h_j
        if norm is None:
            ext = edge_extreme_stats(a, p, idx)[0]  # (B, N, C_out) = max_j p_j
            return self.act(a + ext)

        gamma = norm.weight if norm.affine else None
        # BN scale γ/√(var+eps) has the sign of γ: take the min over neighbours where it is negative.
        sgn = None if gamma is None else torch.where(gamma.detach() >= 0, 1.0, -1.0).to(p.dtype)
        if batch_stats:
            stats = 2 if self.order == "conv_act_norm" and self.act_type != "none" else 1
            slope = float(self.act.negative_slope) if self.act_type == "leaky_relu" else 0.0
            ext, mean, var = edge_extreme_stats(a, p, idx, sgn, stats=stats, slope=slope)
            self._update_running_stats(mean, var, idx.numel())
        else:
            ext = edge_extreme_stats(a, p, idx, sgn)[0]
            mean, var = norm.running_mean, norm.running_var
        scale = torch.rsqrt(var + norm.eps)  # (C_out,)
        if gamma is not None:
            scale = scale * gamma
        shift = -mean * scale
        if norm.affine:
            shift = shift + norm.bias
        if self.order == "conv_norm_act":
            return self.act((a + ext) * scale + shift)
        return self.act(a + ext) * scale + shift

    @torch.no_grad()
    def _update_running_stats(
        self, mean: torch.Tensor, var: torch.Tensor, count: int | torch.Tensor
    ) -> None:
        """Same update as ``F.batch_norm`` in training mode (running_var gets the unbiased var)."""
        norm = self.norm
        if not (norm.training and norm.track_running_stats):
            return
        norm.num_batches_tracked.add_(1)
        if norm.momentum is None:
            factor = 1.0 / float(norm.num_batches_tracked)
        else:
            factor = norm.momentum
        norm.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
        if isinstance(count, torch.Tensor):  # synchronised BN: a 0-dim tensor (no host sync)
            unbiased = var.detach() * (count / (count - 1).clamp(min=1)).to(var.dtype)
        else:
            unbiased = var.detach() * (count / max(count - 1, 1))
        norm.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"order={self.order}, norm={self.norm_type}, act={self.act_type}, fused={self.fused})"
        )
