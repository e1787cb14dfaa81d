"""One ResGCN-28 training step (forward, backward, Adam) on CPU: ours vs the reference formulation.

Setting (DESIGN §6): B=2 blocks × N=4096 points, 9 input channels, 13 classes, k=16, dilation
d=i in block i, stochastic dilation on, train mode, `torch.set_num_threads(2)`.

Variants, all built from `pointseg.models.create_model("resgcn28")` with the same seed:
- ``ours``: the library model as is (fused EdgeConv, the default kNN path ``auto``, split first
  head layer); ``POINTSEG_KNN=bf16`` runs it with the bf16-candidate kNN (docs/knn.md).
- ``exact32``: ``ours`` with ``--knn exact32`` (fp32 distance products).
- ``reference``: the same model and weights emulating the original deep_gcns_torch code: every
  EdgeConv with ``fused=False`` (gather [h_i, h_j − h_i] → 1×1 conv → ReLU → BN → max), every
  kNN graph replaced by the naive full distance matrix ‖x‖² − 2xxᵀ + ‖x‖² + ``topk(k·d)`` then
  slicing every d-th rank, and the prediction head fed the explicit 2816-wide concatenation of
  the repeated global feature and the point features.

Method. Each variant runs in a fresh subprocess (``--variant ours|reference``), so peak memory
is not polluted by the other: after building the model, optimizer and batch the child records its
peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, ≈ the RSS at that point); it then runs a
warm-up step and ``--steps`` timed steps. "step memory" = final peak RSS − that baseline (it
includes Adam's state, created by the first step, and every transient). Time = median of the
timed steps. The ``ours`` child then runs one extra step with forward timers (kNN / graph
convs / head) and backward / Adam timers, and (``--profile``) a torch.profiler op table.

Prints a table and ratios; the LAST line is one JSON object with ``speedup`` (reference time /
our time) and ``memory_ratio`` (our step memory / reference step memory).

    .venv/bin/python benchmarks/train_step.py                    # full benchmark (~3–5 min)
    .venv/bin/python benchmarks/train_step.py --points 1024      # quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Before torch is imported (libgomp reads it at load): idle OpenMP workers sleep instead of
# spinning on the cores the numpy kNN selection threads need (see pointseg/__init__.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads): steadier than wall clock when the
    machine is shared, though it also counts OpenMP threads spinning at barriers."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class NaiveDilatedKnnGraph(nn.Module):
    """The original code's dense dilated kNN: full (B, N, N) distances, topk(k·d), every d-th rank."""

    def __init__(self, k: int, dilation: int, stochastic: bool, epsilon: float) -> None:
        super().__init__()
        self.k, self.dilation, self.stochastic, self.epsilon = k, dilation, stochastic, epsilon

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from pointseg.graph import select_ranks

        inner = -2 * torch.matmul(x, x.transpose(2, 1))  # (B, N, N)
        square = x.pow(2).sum(dim=-1, keepdim=True)  # (B, N, 1)
        dist = square + inner + square.transpose(2, 1)  # (B, N, N)
        _, idx = torch.topk(-dist, k=self.k * self.dilation)  # (B, N, k·d)
        ranks = select_ranks(
            self.k,
            self.dilation,
            stochastic=self.stochastic,
            epsilon=self.epsilon,
            training=self.training,
        )
        return idx.index_select(-1, ranks)


def _concat_head_forward(head: nn.Module):
    """Segmentation head forward with the original's explicit (B, N, 1024 + 1792) concatenation."""
    from pointseg.nn.mlp import apply_norm_act

    def forward(feats: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        if not isinstance(feats, torch.Tensor):  # the per-layer parts: concatenate, as the original
            feats = torch.cat(list(feats), -1)  # (B, N, 64·L)
        g = head.global_feature(feats)  # (B, 1024)
        rep = g.unsqueeze(1).expand(-1, feats.shape[1], -1)  # (B, N, 1024)
        first = head.layers[0]
        h = apply_norm_act(
            first.lin(torch.cat([rep, feats], -1)), first.norm, first.act, head.order
        )
        for layer in head.layers[1:]:
            h = layer(h)
        return head.classifier(head.dropout(h))

    return forward


def build(variant: str, model_name: str) -> nn.Module:
    from pointseg.graph import DilatedKnnGraph
    from pointseg.models import create_model
    from pointseg.nn import EdgeConv

    torch.manual_seed(0)
    model = create_model(model_name)
    if variant == "exact32":
        from pointseg.graph.knn import set_knn_mode

        set_knn_mode("exact32", force=True)
    if variant == "reference":
        for module in model.modules():
            if isinstance(module, EdgeConv):
                module.fused = False
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, DilatedKnnGraph):
                    naive = NaiveDilatedKnnGraph(
                        child.k, child.dilation, child.stochastic, child.epsilon
                    )
                    setattr(parent, name, naive)
        if hasattr(model.head, "layers") and len(model.head.layers):
            model.head.forward = _concat_head_forward(model.head)
    return model.train()


def make_batch(b: int, n: int, channels: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """S3DIS-like blocks: centred xy in ±0.5 m, z in [0, 3] m, rgb in [0, 1], normalised xyz."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(b, n, channels, generator=gen)
    x[..., :2] -= 0.5
    x[..., 2] *= 3.0
    y = torch.randint(0, classes, (b, n), generator=gen)
    return x, y


def train_step(model, opt, x, y) -> None:
    opt.zero_grad(set_to_none=True)
    logits = model(x)  # (B, N, classes)
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    opt.step()


def breakdown(model, opt, x, y) -> dict[str, float]:
    """One step with wall-clock timers: forward kNN / graph convs / head, backward, Adam."""
    from pointseg.graph import DilatedKnnGraph
    from pointseg.nn import CONV_REGISTRY

    totals = {"forward knn": 0.0, "forward graph convs": 0.0, "forward head": 0.0}
    starts: dict[int, float] = {}

    def tag(module) -> str | None:
        if isinstance(module, DilatedKnnGraph | NaiveDilatedKnnGraph):
            return "forward knn"
        if isinstance(module, tuple(CONV_REGISTRY.values())):
            return "forward graph convs"
        if module is getattr(model, "head", None):
            return "forward head"
        return None

    handles = []
    for module in model.modules():
        key = tag(module)
        if key is None:
            continue

        def pre(mod, args, key=key):
            starts[id(mod)] = time.perf_counter()

        def post(mod, args, out, key=key):
            totals[key] += time.perf_counter() - starts.pop(id(mod))

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        opt.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        logits = model(x)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
    finally:
        for h in handles:
            h.remove()
    totals["forward other (residual adds, concat, loss)"] = (t1 - t0) - sum(totals.values())
    totals["backward"] = t2 - t1
    totals["adam"] = t3 - t2
    totals["total"] = t3 - t0
    return totals


def run_variant(args) -> dict:
    torch.set_num_threads(args.threads)
    model = build(args.variant, args.model)
    cfg = model.config
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = make_batch(args.batch, args.points, cfg.in_channels, cfg.num_classes)
    baseline = peak_rss_mb()
    t0 = time.perf_counter()
    train_step(model, opt, x, y)  # warm-up (also allocates Adam's state)
    warmup = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(args.steps):
        t0, c0 = time.perf_counter(), cpu_seconds()
        train_step(model, opt, x, y)
        times.append(time.perf_counter() - t0)
        cpu.append(cpu_seconds() - c0)
    peak = peak_rss_mb()
    result = {
        "variant": args.variant,
        "params": sum(p.numel() for p in model.parameters()),
        "warmup_s": warmup,
        "times_s": times,
        "median_s": statistics.median(times),
        "cpu_s": cpu,
        "cpu_median_s": statistics.median(cpu),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "step_mem_mb": peak - baseline,
    }
    if args.variant in ("ours", "exact32"):
        result["breakdown_s"] = breakdown(model, opt, x, y)
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                train_step(model, opt, x, y)
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
            print(table, file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variant", choices=["ours", "exact32", "reference"], help="run one variant here"
    )
    parser.add_argument("--variants", default="ours,reference", help="variants to compare")
    parser.add_argument("--model", default="resgcn28")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--points", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=2, help="timed steps after the warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="torch.profiler op table (stderr)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")

    if args.variant:  # child: one variant, JSON on the last line
        print(json.dumps(run_variant(args)))
        return 0

    results = {}
    for variant in args.variants.split(","):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--variant", variant]
        cmd += ["--model", args.model, "--batch", str(args.batch), "--points", str(args.points)]
        cmd += ["--steps", str(args.steps), "--threads", str(args.threads)]
        cmd += ["--profile"] if args.profile else []
        print(f"running {variant} in a fresh process ...", flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.stderr.strip():
            print(proc.stderr, file=sys.stderr)
        if proc.returncode != 0:
            print(f"variant {variant} failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])

    print(
        f"\n{args.model} train step, B={args.batch} N={args.points} "
        f"threads={args.threads}, {args.steps} timed steps after 1 warm-up"
    )
    print(
        f"{'variant':<10} {'median s':>9} {'steps s':>18} {'warm-up s':>9} {'step MB':>8} {'peak MB':>8}"
    )
    for name, r in results.items():
        steps = ", ".join(f"{t:.2f}" for t in r["times_s"])
        print(
            f"{name:<10} {r['median_s']:>9.2f} {steps:>18} {r['warmup_s']:>9.2f} "
            f"{r['step_mem_mb']:>8.0f} {r['peak_rss_mb']:>8.0f}"
        )
    for name in ("ours", "exact32"):
        if name in results and "breakdown_s" in results[name]:
            print(f"\n{name}, one step broken down (wall clock):")
            for key, val in results[name]["breakdown_s"].items():
                print(f"  {key:<45} {val:7.2f} s")
    summary: dict = {"model": args.model, "batch": args.batch, "points": args.points}
    for name, r in results.items():
        summary[f"{name}_s"] = round(r["median_s"], 3)
        summary[f"{name}_cpu_s"] = round(r["cpu_median_s"], 3)
        summary[f"{name}_step_mb"] = round(r["step_mem_mb"], 1)
    if {"ours", "reference"} <= results.keys():
        ours, ref = results["ours"], results["reference"]
        summary["speedup"] = round(ref["median_s"] / ours["median_s"], 2)
        summary["cpu_speedup"] = round(ref["cpu_median_s"] / ours["cpu_median_s"], 2)
        summary["memory_ratio"] = round(ours["step_mem_mb"] / ref["step_mem_mb"], 3)
        print(
            f"\nspeedup {summary['speedup']:.2f}x wall (target >= 5), "
            f"{summary['cpu_speedup']:.2f}x CPU time, "
            f"memory ratio {summary['memory_ratio']:.3f} (target <= 0.25)"
        )
    if {"ours", "exact32"} <= results.keys():
        ours, e32 = results["ours"], results["exact32"]
        summary["speedup_vs_exact32"] = round(e32["median_s"] / ours["median_s"], 3)
        summary["cpu_speedup_vs_exact32"] = round(e32["cpu_median_s"] / ours["cpu_median_s"], 3)
        summary["memory_ratio_vs_exact32"] = round(ours["step_mem_mb"] / e32["step_mem_mb"], 3)
        kn = ours["breakdown_s"]["forward knn"], e32["breakdown_s"]["forward knn"]
        print(
            f"default kNN path vs exact32: step {summary['speedup_vs_exact32']:.2f}x wall, "
            f"{summary['cpu_speedup_vs_exact32']:.2f}x CPU, forward kNN {kn[1]:.2f} s -> "
            f"{kn[0]:.2f} s, step memory ratio {summary['memory_ratio_vs_exact32']:.3f}"
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
