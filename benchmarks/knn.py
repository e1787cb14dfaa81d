"""Dilated dynamic kNN of ResGCN-28 on CPU: ours (pointseg.graph) vs the naive dense formulation.

Setting (DESIGN §6): B=4 blocks × N=4096 points, D=64 features, k=16, the 27 backbone blocks'
dilations d = 1..27 (block i builds its graph with dilation i, i.e. the k·d = 16..432 nearest),
plus the head's d=1 graph on xyz (C=3). ``torch.set_num_threads(2)``.

- ``baseline``: the original deep_gcns_torch dense kNN, implemented here: the full
  (B, N, N) distance ``‖x‖² − 2xxᵀ + ‖x‖²`` (float32, uncentred), ``topk(k·d)`` over whole rows,
  then ``[..., ::d]``.
- ``ours``: ``pointseg.graph.dilated_knn`` on the exact fp32 path (``--knn exact32``: centred
  features, fp32 distance products, the compiled selection kernel).
- ``bf16``: the exact bf16-candidate path (``pointseg.graph.bf16``: bf16 distance products,
  candidates, fp32 re-rank of the candidates, per-row proof, fp32 fallback), forced with
  ``method="bf16"``; its columns are its time, its speedup over ``ours``, its neighbour-set
  agreement with ``ours``, its agreement with float64 and the rows that fell back to fp32.

Each graph gets its own random features (seeded; a new layer sees new features), and both
methods are timed on the same tensor (best of ``--repeats``; the two are interleaved so machine
load hits both alike). Wall time is the score; process CPU time is printed as well because this
machine is shared and wall time is noisy.

Agreement. Both compute exact kNN in float32 up to rounding, so they may differ where two
distances are within float32 rounding of each other (a near-tie). We compare each row's
neighbours as sets and require ≥ 99.9% of slots to agree. To show the differences are rounding,
a sample of rows is ranked in float64 and the agreement of each method with it is printed: ours
(centred) agrees with float64 more often than the uncentred baseline.

Prints a per-dilation table and the totals; the LAST line is one JSON object with ``speedup``
(baseline time / our time), ``ours_s``, ``baseline_s`` and the agreement numbers.

    .venv/bin/python benchmarks/knn.py                 # full run (~1–2 min on 2 idle cores)
    .venv/bin/python benchmarks/knn.py --points 1024   # quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Before torch is imported (libgomp reads it at load): idle OpenMP workers sleep instead of
# spinning on the cores the numpy kNN selection threads need (see pointseg/__init__.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import importlib  # noqa: E402

from pointseg.graph import dilated_knn  # noqa: E402

knn_module = importlib.import_module("pointseg.graph.knn")


@torch.no_grad()
def naive_dilated_knn(x: torch.Tensor, k: int, dilation: int) -> torch.Tensor:
    """The original dense dilated kNN: (B, N, N) distances, topk(k·d), every d-th rank."""
    sq = x.pow(2).sum(dim=-1, keepdim=True)  # (B, N, 1)
    dist = sq - 2 * x @ x.transpose(1, 2) + sq.transpose(1, 2)  # (B, N, N)
    idx = dist.topk(k * dilation, dim=-1, largest=False).indices  # (B, N, k·d)
    return idx[..., ::dilation]


def timed(fn, *args, **kwargs) -> tuple[torch.Tensor, float, float]:
    """(result, wall seconds, process CPU seconds)."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w0, time.process_time() - c0


def set_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of slots whose neighbour appears in the other method's set for the same row."""
    # (R, k, 1) == (R, 1, k): is a's slot j anywhere in b's row.
    a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return float((a2.unsqueeze(-1) == b2.unsqueeze(1)).any(-1).double().mean())


def float64_sets(x: torch.Tensor, rows: torch.Tensor, k: int, dilation: int) -> torch.Tensor:
    """Dilated neighbours of query rows ``rows`` (R,) of every batch element, ranked in float64."""
    # Centred float64 expansion: rounding ~1e-16·‖x‖², far below any float32 near-tie.
    xd = x.double() - x.double().mean(dim=1, keepdim=True)  # (B, N, C)
    sq = xd.pow(2).sum(-1)  # (B, N)
    q = xd[:, rows]  # (B, R, C)
    dist = sq[:, rows].unsqueeze(-1) - 2 * q @ xd.transpose(1, 2) + sq.unsqueeze(1)  # (B, R, N)
    return dist.topk(k * dilation, dim=-1, largest=False).indices[..., ::dilation]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--points", type=int, default=4096)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--max-dilation", type=int, default=27)
    p.add_argument("--repeats", type=int, default=1, help="timed runs per graph (best is kept)")
    p.add_argument("--check-rows", type=int, default=64, help="rows per graph ranked in float64")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-bf16", action="store_true", help="skip the bf16-candidate column")
    args = p.parse_args(argv)
    bf16 = not args.no_bf16
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed)
    B, N, D, k = args.batch, args.points, args.channels, args.k
    dilations = [d for d in range(1, args.max_dilation + 1) if k * d <= N]

    # (name, features, dilation): the head graph on xyz of a 1 m block, then the 27 blocks.
    graphs = [("head xyz", torch.rand(B, N, 3, generator=g) * torch.tensor([1.0, 1.0, 3.0]), 1)]
    graphs += [(f"block {d}", torch.randn(B, N, D, generator=g), d) for d in dilations]

    # Warm-up (thread pool, allocator, BLAS) on a small problem.
    warm = torch.randn(B, min(N, 512), D, generator=g)
    with knn_module.knn_mode("exact32"):
        dilated_knn(warm, k, 4)
    naive_dilated_knn(warm, k, 4)
    if bf16:
        dilated_knn(warm, k, 4, method="bf16")

    print(
        f"dilated kNN, B={B} N={N} D={D} k={k}, dilations 1..{dilations[-1]}, "
        f"{args.threads} threads, best of {args.repeats}"
    )
    header = (
        f"{'graph':>9} {'k·d':>5} {'baseline s':>11} {'ours s':>8} {'speedup':>8} {'agree %':>8}"
    )
    header += f" {'base=f64 %':>10} {'ours=f64 %':>10}"
    if bf16:
        header += f" {'bf16 s':>7} {'vs ours':>7} {'=ours %':>8} {'=f64 %':>8} {'fallback':>8}"
    lines = [header]
    tot = {"base_w": 0.0, "ours_w": 0.0, "base_c": 0.0, "ours_c": 0.0, "bf16_w": 0.0, "bf16_c": 0.0}
    slots = agree_slots = bf16_slots = 0.0
    f64 = {"base": 0.0, "ours": 0.0, "bf16": 0.0, "n": 0}
    fallback_rows = 0
    for name, x, d in tqdm(graphs, desc="graphs", file=sys.stderr):
        bw = ow = bc = oc = fw = fc = float("inf")
        for _ in range(args.repeats):
            base, w, c = timed(naive_dilated_knn, x, k, d)
            bw, bc = min(bw, w), min(bc, c)
            with knn_module.knn_mode("exact32"):
                ours, w, c = timed(dilated_knn, x, k, d)
            ow, oc = min(ow, w), min(oc, c)
            if bf16:
                new, w, c = timed(dilated_knn, x, k, d, method="bf16")
                fw, fc = min(fw, w), min(fc, c)
        tot["base_w"] += bw
        tot["ours_w"] += ow
        tot["base_c"] += bc
        tot["ours_c"] += oc
        agree = set_agreement(ours, base)
        agree_slots += agree * ours.numel()
        slots += ours.numel()
        rows = torch.randperm(N, generator=g)[: args.check_rows]
        exact = float64_sets(x, rows, k, d)
        a_base = set_agreement(base[:, rows], exact)
        a_ours = set_agreement(ours[:, rows], exact)
        n = exact.numel()
        f64["base"] += a_base * n
        f64["ours"] += a_ours * n
        f64["n"] += n
        line = (
            f"{name:>9} {k * d:>5} {bw:>11.3f} {ow:>8.3f} {bw / ow:>8.2f} {100 * agree:>8.3f}"
            f" {100 * a_base:>10.3f} {100 * a_ours:>10.3f}"
        )
        if bf16:
            tot["bf16_w"] += fw
            tot["bf16_c"] += fc
            a_new = set_agreement(new, ours)
            bf16_slots += a_new * new.numel()
            a_new64 = set_agreement(new[:, rows], exact)
            f64["bf16"] += a_new64 * n
            fb = knn_module.last_bf16_stats.get("fallback", 0)
            fallback_rows += fb
            line += (f" {fw:>7.3f} {ow / fw:>7.2f} {100 * a_new:>8.3f} {100 * a_new64:>8.3f}"
                     f" {fb:>8d}")  # fmt: skip
            del new
        lines.append(line)
        del base, ours
    print("\n".join(lines))
    agreement = agree_slots / slots
    speedup = tot["base_w"] / tot["ours_w"]
    print(
        f"total  baseline {tot['base_w']:.2f} s  ours {tot['ours_w']:.2f} s  speedup {speedup:.2f}×"
        f"  (CPU time: baseline {tot['base_c']:.2f} s, ours {tot['ours_c']:.2f} s, "
        f"{tot['base_c'] / tot['ours_c']:.2f}×)"
    )
    print(
        f"neighbour-set agreement ours vs baseline: {100 * agreement:.4f}% of slots; vs float64 "
        f"({f64['n']} slots of {args.check_rows} sampled rows per graph and batch element): "
        f"baseline {100 * f64['base'] / f64['n']:.4f}%, ours {100 * f64['ours'] / f64['n']:.4f}%"
    )
    ok = agreement >= 0.999
    if not ok:
        print(f"FAIL: agreement {agreement:.5f} < 0.999", file=sys.stderr)
    extra = {}
    if bf16:
        bf16_agree = bf16_slots / slots
        extra = {
            "bf16_s": round(tot["bf16_w"], 3),
            "bf16_speedup_vs_ours": round(tot["ours_w"] / tot["bf16_w"], 3),
            "bf16_cpu_speedup_vs_ours": round(tot["ours_c"] / tot["bf16_c"], 3),
            "bf16_agreement_vs_ours": round(bf16_agree, 6),
            "bf16_vs_float64": round(f64["bf16"] / f64["n"], 6),
            "bf16_fallback_rows": fallback_rows,
        }
        print(
            f"bf16 path: {tot['bf16_w']:.2f} s, {tot['ours_w'] / tot['bf16_w']:.2f}× ours "
            f"(CPU time {tot['ours_c'] / tot['bf16_c']:.2f}×); neighbour sets equal ours on "
            f"{100 * bf16_agree:.4f}% of slots, float64 on {100 * f64['bf16'] / f64['n']:.4f}%; "
            f"{fallback_rows} rows fell back to fp32"
        )
        if bf16_agree < 0.999:
            ok = False
            print(f"FAIL: bf16 agreement {bf16_agree:.5f} < 0.999", file=sys.stderr)
    print(
        json.dumps(
            {
                "speedup": round(speedup, 3),
                "ours_s": round(tot["ours_w"], 3),
                "baseline_s": round(tot["base_w"], 3),
                "cpu_speedup": round(tot["base_c"] / tot["ours_c"], 3),
                "ours_cpu_s": round(tot["ours_c"], 3),
                "baseline_cpu_s": round(tot["base_c"], 3),
                "agreement": round(agreement, 6),
                "baseline_vs_float64": round(f64["base"] / f64["n"], 6),
                "ours_vs_float64": round(f64["ours"] / f64["n"], 6),
                "B": B,
                "N": N,
                "D": D,
                "k": k,
                "dilations": len(dilations),
                "threads": args.threads,
                **extra,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
