"""Exact kNN from bf16 distance products: bf16 candidates, an fp32 re-rank, a per-row proof.

The Gram product ``x_i·x_j`` of the kNN (:mod:`pointseg.graph.knn`) runs ~2× faster in pure bf16
on CPUs with AVX512-BF16 / AMX (and on GPUs), but bf16 keeps 8 significant bits and reorders near
neighbours. This path keeps the result exact (docs/knn.md has the derivation and measurements):

1. approximate scores ``s̃_j = ‖x_j‖² − 2·d̃_j`` from one bf16 GEMM (``d̃_j ≈ x_i·x_j``);
2. a bound ``|s̃_j − ŝ_j| ≤ e_ij`` per pair, from the norms of x_i, x_j, of their bf16 rounding
   errors and from ``|d̃_j|`` (:func:`score_error_bound`), where
   ``ŝ_j = ‖x_j‖² − 2·x_i·x_j`` in fp32 is the exact score this path ranks by; so
   ``lb_j = s̃_j − e_ij ≤ ŝ_j ≤ s̃_j + e_ij = ub_j``;
3. candidates ``S = {j : lb_j ≤ t}``, ``t`` an upper estimate (from a sample) of the ``k·d``-th
   smallest ``ub``; ``ŝ`` for the candidates only, sorted by (ŝ, column);
4. the per-row proof: every point outside ``S`` has ``ŝ_j ≥ lb_j > t``, so if the ``k·d``-th
   smallest ``ŝ`` in ``S`` is ``≤ t`` (strictly below every outsider: no tie either), ``S``
   holds exactly the first ``k·d`` of the (ŝ, column) order over all ``N`` points;
5. rows without a proof (after one retry with a higher threshold) are recomputed in fp32 over
   the whole row.

On CPU steps 2–5 run in the compiled kernel ``pointseg._native._select.select_rerank``
(``select_rerank.h``); :func:`bf16_knn_torch` is the same algorithm in torch ops for any device
(CUDA, ``meta``, or CPUs without the kernel; there the candidates are the ``ceil(1.5·k·d) + 16``
smallest ``lb`` and the proof compares with the next one), also used to test the kernel.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "native_bf16_cpu",
    "score_error_bound",
    "bf16_knn_torch",
    "CANDIDATE_MARGIN",
    "U_BF16",
]

U_BF16 = 2.0**-8  # unit roundoff of bfloat16 (8 significant bits, round to nearest)
U_FP32 = 2.0**-24
# m: the sampled threshold aims at sample rank m·μ + 2√μ + 2 of the k·d-th smallest upper bound
# (μ its expected rank; a retry at + 5√μ). m = 1: docs/knn.md says how it was chosen.
CANDIDATE_MARGIN = 1.0
# torch path: candidates per row = ceil(TORCH_MARGIN · k·d) + 16 (topk needs a fixed count)
TORCH_MARGIN = 1.5


@functools.lru_cache(maxsize=1)
def native_bf16_cpu() -> bool:
    """True when this CPU does bf16 matrix products in hardware (AVX512-BF16 or AMX-BF16).

    Read from ``/proc/cpuinfo`` (Linux); elsewhere from torch's CPU capability (AVX512 builds
    use oneDNN's bf16 kernels only with the native instructions). Emulated bf16 is slower than
    fp32, so the bf16 path is never auto-selected without these flags.
    """
    if sys.platform.startswith("linux") and os.path.exists("/proc/cpuinfo"):
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("flags"):
                        flags = set(line.split(":", 1)[1].split())
                        return bool(flags & {"avx512_bf16", "amx_bf16"})
        except OSError:
            pass
        return False
    return False


class ErrorBound(NamedTuple):
    """``|s̃_ij − ŝ_ij| ≤ ea_i + ep_i·norm_j + eq_i·rho_j + eb·|d̃_ij|`` (see the module doc)."""

    ea: Tensor  # (B, N) float64
    ep: Tensor  # (B, N) float64
    eq: Tensor  # (B, N) float64
    eb: float
    norm: Tensor  # (B, N) float32 ‖x_j‖
    rho: Tensor  # (B, N) float32 ‖bf16(x_j) − x_j‖

    def pair(self, d: Tensor, rows: slice = slice(None)) -> Tensor:
        """The bound (B, R, N) float64 for bf16 dots ``d`` (B, R, N) of query rows ``rows``."""
        ea, ep, eq = (t[:, rows, None] for t in (self.ea, self.ep, self.eq))
        nj, rj = self.norm.double()[:, None], self.rho.double()[:, None]
        return ea + ep * nj + eq * rj + self.eb * d.double().abs()


def score_error_bound(xc: Tensor, sq: Tensor) -> ErrorBound:
    """Per-pair bound of ``|s̃_ij − ŝ_ij|`` for centred float32 features xc (B, N, C) with fp32
    squared norms sq (B, N); ``d̃_ij`` is the bf16 dot product (derivation: docs/knn.md).

    With ``n = ‖x‖``, ``ρ = ‖bf16(x) − x‖``, ``γ = γ_C``:
    inputs ``ρ_i n_j + (n_i + ρ_i) ρ_j``; fp32 accumulation ``γ (n_i + ρ_i)(n_j + ρ_j)``; fp32
    re-rank ``γ n_i n_j``; bf16 output rounding ``u/(1 − u)·|d̃|``; all doubled (``s = sq − 2d``),
    plus the fp32 subtractions and flush-to-zero, times 1.01.
    """
    c = xc.shape[-1]
    g = c * U_FP32 / (1 - c * U_FP32)  # γ_C
    n = xc.double().pow(2).sum(-1).sqrt()  # (B, N) ‖x_i‖
    rho = (xc.to(torch.bfloat16).float() - xc).double().pow(2).sum(-1).sqrt()  # ‖bf16(x) − x‖
    mn = n.amax(dim=1, keepdim=True)  # (B, 1)
    sqmax = sq.double().amax(dim=1, keepdim=True)
    f = 1.01
    ep = f * 2.0 * (rho + g * (n + rho) + g * n)
    eq = f * 2.0 * (n + rho + g * (n + rho))
    ea = f * 4.2 * U_FP32 * (sqmax + 2.1 * n * mn) + 4.0 * c * 2.0**-126 * (mn + 1.0)
    eb = f * 2.0 * U_BF16 / (1.0 - U_BF16)
    # norms handed to float32 kernels: rounded up so the bound only grows
    up = 1.0 + 2.0**-20
    return ErrorBound(ea, ep, eq, eb, (n * up).float(), (rho * up).float())


def bf16_graph_cpu(xc, sq, ranks: np.ndarray, out: np.ndarray, rows: int, workers: int,
                   margin: float = CANDIDATE_MARGIN) -> dict:  # fmt: skip
    """CPU: bf16 GEMM per block of ``rows`` query rows, then the compiled re-rank kernel.

    xc (B, N, C) centred float32, sq (B, 1, N) float32, ranks (k,) int64 numpy, out (B, N, k)
    int64 numpy (written). Returns {"fallback": rows re-done in fp32, "candidates": mean |S|}.
    """
    from pointseg._native import _select  # the caller checked it has select_rerank
    from pointseg.graph._workers import get_pool, row_splits

    B, N, C = xc.shape
    xb = xc.to(torch.bfloat16)  # (B, N, C)
    xbt = xb.transpose(1, 2).contiguous()  # (B, C, N)
    sq2 = sq.reshape(B, N).contiguous()
    eb_ = score_error_bound(xc, sq2)
    ea, ep, eq = eb_.ea.numpy(), eb_.ep.numpy(), eb_.eq.numpy()  # (B, N) float64
    nrm, rho = eb_.norm.numpy(), eb_.rho.numpy()  # (B, N) float32
    x_np, sq_np = xc.contiguous().numpy(), sq2.numpy()
    stats = [0, 0, 0]

    def task(b: int, r0: int, r1: int) -> tuple[int, int, int]:
        buf = torch.empty(min(rows, r1 - r0), N, dtype=torch.bfloat16)
        fb = cand = retry = 0
        for a in range(r0, r1, rows):
            e = min(r1, a + rows)
            d = buf[: e - a]  # (m, N) bf16 dot products
            torch.mm(xb[b, a:e], xbt[b], out=d)
            f, c, r = _select.select_rerank(d.view(torch.int16).numpy(), x_np[b], sq_np[b],
                                            nrm[b], rho[b], ea[b], ep[b], eq[b], eb_.eb, a,
                                            ranks, out[b, a:e], float(margin))  # fmt: skip
            fb += f
            cand += c
            retry += r
        return fb, cand, retry

    tasks = [(b, r0, r1) for b in range(B) for r0, r1 in row_splits(N, -(-workers // B))]
    if workers <= 1 or len(tasks) <= 1:
        results = [task(*t) for t in tasks]
    else:
        pool = get_pool(workers)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the workers are the parallelism
        try:
            results = [f.result() for f in [pool.submit(task, *t) for t in tasks]]
        finally:
            torch.set_num_threads(threads)
    for f, c, r in results:
        stats[0] += f
        stats[1] += c
        stats[2] += r
    accepted = B * N - stats[0]
    return {"fallback": stats[0], "candidates": stats[1] / max(1, accepted), "retries": stats[2]}


def bf16_knn_torch(xc: Tensor, sq: Tensor, kmax: int, *, chunk_size: int | None = None,
                   margin: float = TORCH_MARGIN, compute_dtype: torch.dtype = torch.bfloat16,
                   stats: dict | None = None) -> Tensor:  # fmt: skip
    """The same exact path in torch ops (any device; meta tensors give shapes only).

    xc (B, N, C) centred float32, sq (B, 1, N) its squared norms → (B, N, kmax) int64, nearest
    first by the exact fp32 score ``ŝ``, ties by the lower index, self first. Candidates: the
    ``M = ceil(margin·kmax) + 16`` smallest lower bounds ``lb``; the (M+1)-th is a lower bound of
    every non-candidate's ``ŝ`` (the proof). Rows without a proof are recomputed in fp32.
    """
    B, N, C = xc.shape
    dev = xc.device
    meta = dev.type == "meta"
    M = min(N, math.ceil(margin * kmax) + 16)
    sq2 = sq.reshape(B, N)
    bound = score_error_bound(xc, sq2)
    xb = xc.to(compute_dtype)
    xbt = xb.transpose(1, 2)
    if chunk_size is None:  # the (B, chunk, M, C) gather ~64 MB
        chunk_size = max(1, min(N, (64 << 20) // max(1, 4 * B * (M + 1) * max(C, 16))))
    out = torch.empty(B, N, kmax, dtype=torch.long, device=dev)
    bidx = torch.arange(B, device=dev).view(B, 1, 1)
    # the bound assumes the bf16 GEMM accumulates in fp32 and rounds once: no reduced-precision
    # (split-K bf16) reductions on CUDA
    cuda_flag = None
    if dev.type == "cuda":
        cuda_flag = torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    try:
        _torch_rows(xc, sq2, xb, xbt, bound, kmax, M, chunk_size, out, bidx, meta, stats)
    finally:
        if cuda_flag is not None:
            torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = cuda_flag
    return out


def _torch_rows(xc, sq2, xb, xbt, bound, kmax, M, chunk_size, out, bidx, meta, stats):
    """The row chunks of `bf16_knn_torch` (writes `out`)."""
    B, N, C = xc.shape
    dev = xc.device
    for s in range(0, N, chunk_size):
        e = min(N, s + chunk_size)
        m = e - s
        rows = torch.arange(s, e, device=dev)  # (m,)
        d = torch.bmm(xb[:, s:e], xbt).float()  # (B, m, N) the low-precision dot products
        # lower bounds lb_j = s̃_j − e_j ≤ ŝ_j; self −inf
        # (the bound in float64, rounded up to float32: lb only moves down)
        e_f = (bound.pair(d, slice(s, e)) * (1 + 2.0**-20)).float()
        lb = (sq2.unsqueeze(1) - 2.0 * d) - e_f
        lb.diagonal(offset=s, dim1=1, dim2=2).fill_(float("-inf"))
        if M < N:
            vals, cand = lb.topk(M + 1, dim=-1, largest=False, sorted=True)  # (B, m, M+1)
            mn, cand = vals[..., M], cand[..., :M]
        else:
            cand = torch.arange(N, device=dev).expand(B, m, N)
            mn = torch.full((B, m), float("inf"), device=dev)
        cand = cand.sort(dim=-1).values  # column order: the stable sort below breaks ties by it
        xj = xc[bidx, cand]  # (B, m, M, C)
        dot = (xj @ xc[:, s:e].unsqueeze(-1)).squeeze(-1)  # (B, m, M) fp32
        exact = sq2[bidx, cand] - 2.0 * dot
        exact = exact.masked_fill(cand == rows.view(1, m, 1), float("-inf"))  # self first
        sv, order = exact.sort(dim=-1, stable=True)  # (B, m, M)
        idx = cand.gather(-1, order[..., :kmax])  # (B, m, kmax)
        # every non-candidate has ŝ ≥ lb ≥ mn: strictly above the kmax-th exact score → exact
        ok = mn > sv[..., kmax - 1]  # (B, m)
        out[:, s:e] = idx
        if meta:
            continue
        bad = (~ok).nonzero()  # (F, 2): (batch, row in chunk)
        if stats is not None:
            stats["fallback"] = stats.get("fallback", 0) + int(bad.shape[0])
        if bad.numel():
            bb, rr = bad[:, 0], bad[:, 1] + s
            full = sq2[bb] - 2.0 * torch.einsum("fc,fnc->fn", xc[bb, rr], xc[bb])  # (F, N)
            full[torch.arange(len(rr), device=dev), rr] = float("-inf")
            # stable (value, index) order: sort is stable on the ascending index layout
            out[bb, rr] = full.sort(dim=-1, stable=True).indices[:, :kmax]
