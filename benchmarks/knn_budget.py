"""Where ResGCN-28 inference time goes, and the most any kNN speed-up can give (Amdahl).

The real model (ResGCN-28, random weights, seed 0, eval, `torch.inference_mode`) runs on B
generated 4096-point blocks with the default exact fp32 kNN. The run is instrumented, not
sampled: every per-worker kNN task (`pointseg.graph.knn._native_task`: 64-row distance
products + selection) is timed in CPU time of its thread, and inside it every selection call
(`_native_rows`) and every distance product (`torch.addmm`); the rest of the network is the
process CPU time minus the kNN's. CPU time, not wall time, so a loaded machine does not skew the
split:

- **distance products**: the fp32 `addmm` of each 64-row strip (64 × C @ C × N);
- **selection**: the compiled `select_ranks` of each strip (the k·d nearest, dilated);
- **kNN other**: per-strip Python, the self (-inf) fill, numpy views;
- **rest of the network**: head, 28 EdgeConvs, fusion, prediction MLP.

Then the one-thread rates of the distance products for one (N, N) score block at this shape,
strip by strip as the kNN computes them: fp32 and pure bf16 (no re-rank, no proof: the bf16
path's best case), and one (N, N) fp32 product for contrast.

From the split it prints the Amdahl bounds: the whole-forward speed-up if the distance products
were free, if the selection were free, if the distance products ran at the bf16 rate, and what
both would need to reach a target (`--target`, default 1.5×, issue 20). The last line is one JSON
object.

    python benchmarks/knn_budget.py                 # B=2, N=4096, one thread (~1 min)
    python benchmarks/knn_budget.py --threads 2     # CPU time summed over the two workers
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

K = importlib.import_module("pointseg.graph.knn")


def blocks(b: int, n: int, seed: int) -> torch.Tensor:
    """(B, N, 9): block-centred xyz, colours, room-normalised xyz of 1 m × 1 m × 3 m blocks."""
    g = torch.Generator().manual_seed(seed)
    xyz = torch.rand(b, n, 3, generator=g) * torch.tensor([1.0, 1.0, 3.0])
    rgb = torch.rand(b, n, 3, generator=g)
    return torch.cat([xyz - torch.tensor([0.5, 0.5, 0.0]), rgb, xyz / 3.0], -1)


class Meter:
    """Patches the kNN's task, selection and distance product with CPU timers (seconds, summed
    over calls and threads)."""

    def __init__(self) -> None:
        self.t = {"knn": 0.0, "select": 0.0, "products": 0.0}
        self._local = threading.local()
        self._saved = (K._native_task, K._native_rows, torch.addmm)

    def _wrap(self, key, fn):
        local = self._local

        def timed(*a, **kw):
            if key == "products" and not getattr(local, "in_task", False):
                return fn(*a, **kw)  # an addmm of the network, not of the kNN
            if key == "knn":
                local.in_task = True
            t0 = time.thread_time()  # CPU time of the calling thread: robust to machine load
            try:
                return fn(*a, **kw)
            finally:
                self.t[key] += time.thread_time() - t0
                if key == "knn":
                    local.in_task = False

        return timed

    def __enter__(self) -> Meter:
        task, rows, addmm = self._saved
        K._native_task = self._wrap("knn", task)
        K._native_rows = self._wrap("select", rows)
        torch.addmm = self._wrap("products", addmm)
        return self

    def __exit__(self, *exc) -> None:
        K._native_task, K._native_rows, torch.addmm = self._saved


def strip_rates(n: int, c: int, rows: int, repeats: int) -> dict[str, float]:
    """Seconds for one (n, n) score block at one thread: strips of `rows` in fp32 and bf16."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, generator=g)
    xt, sq = x.t().contiguous(), (x * x).sum(1)[None]
    xb, xtb = x.bfloat16(), xt.bfloat16()
    out, outb = torch.empty(rows, n), torch.empty(rows, n, dtype=torch.bfloat16)

    def fp32():
        for a in range(0, n, rows):
            torch.addmm(sq, x[a : a + rows], xt, beta=1.0, alpha=-2.0, out=out)

    def bf16():
        for a in range(0, n, rows):
            torch.mm(xb[a : a + rows], xtb, out=outb)

    def full():
        torch.addmm(sq, x, xt, beta=1.0, alpha=-2.0)

    res = {}
    for name, fn in (("fp32 strips", fp32), ("bf16 strips", bf16), ("fp32 one product", full)):
        fn()
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        res[name] = best
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--points", type=int, default=4096)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2, help="instrumented forwards (best kept)")
    p.add_argument("--repeats", type=int, default=5, help="strip timing repeats (best kept)")
    p.add_argument("--target", type=float, default=1.5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from pointseg.models import DeepGCN, get_config

    torch.manual_seed(0)
    cfg = get_config("resgcn28")
    model = DeepGCN(cfg).eval()
    x = blocks(args.batch, args.points, seed=0)
    with torch.inference_mode(), K.knn_mode("exact32"):
        model(x)  # warm-up: thread pool, allocator, BLAS
        best = None
        for _ in range(args.rounds):
            with Meter() as m:
                w0, c0 = time.perf_counter(), time.process_time()
                model(x)
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            if best is None or cpu < best[1]:
                best = (wall, cpu, dict(m.t))
    wall, cpu, t = best
    knn, sel, prod = t["knn"], t["select"], t["products"]
    other = knn - sel - prod
    rest = cpu - knn  # CPU seconds outside the kNN tasks (= wall at one thread)
    total = knn + rest
    split = {
        "distance products": prod,
        "selection": sel,
        "kNN other": other,
        "rest of the network": rest,
    }
    print(
        f"ResGCN-28 forward, B={args.batch} N={args.points}, {args.threads} thread(s), exact32: "
        f"wall {wall:.2f} s, CPU {cpu:.2f} s (best of {args.rounds})"
    )
    print(f"{'part':<22} {'CPU s':>7} {'share':>7}")
    for name, s in split.items():
        print(f"{name:<22} {s:7.2f} {s / total:7.1%}")

    rates = strip_rates(args.points, cfg.channels, 64, args.repeats)
    flops = 2.0 * args.points**2 * cfg.channels
    print(f"\none ({args.points}, {args.points}) score block, C={cfg.channels}, one thread:")
    for name, s in rates.items():
        print(f"  {name:<17} {s * 1e3:7.1f} ms  {flops / s / 1e9:6.0f} GFLOP/s")
    bf16_gain = rates["fp32 strips"] / rates["bf16 strips"]

    def speedup(prod_f: float, sel_f: float) -> float:
        """Whole-forward speed-up with the distance products / selection sped up by these
        factors (inf = free)."""
        new = rest + other + prod / prod_f + sel / sel_f
        return total / new

    inf = float("inf")
    bounds = {
        "products free": speedup(inf, 1.0),
        "selection free": speedup(1.0, inf),
        f"products at the bf16 rate ({bf16_gain:.2f}x)": speedup(bf16_gain, 1.0),
        "products 2x and selection 2x": speedup(2.0, 2.0),
        "products and selection free": speedup(inf, inf),
    }
    print("\nAmdahl: whole-forward speed-up if ...")
    for name, s in bounds.items():
        print(f"  {name:<40} {s:5.2f}x")
    # With the products free, the selection factor f that reaches the target:
    # total / (rest + other + sel / f) = target  =>  f = sel / (total / target - rest - other)
    room = total / args.target - rest - other
    need_sel = sel / room if room > 0 else inf
    print(
        f"  to reach {args.target}x with free distance products the selection must be "
        f"{need_sel:.2f}x faster"
        if need_sel < inf
        else f"  {args.target}x is out of reach"
    )
    print(
        json.dumps(
            {
                "forward_s": round(total, 3),
                "shares": {k: round(v / total, 4) for k, v in split.items()},
                "bf16_strip_gain": round(bf16_gain, 3),
                "bounds": {k: round(v, 3) for k, v in bounds.items()},
                "selection_factor_needed": round(need_sel, 3) if need_sel < inf else None,
                "threads": args.threads,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
