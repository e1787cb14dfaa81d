"""Peak memory and step time of deep res+ GENConv models (ResGEN) against RevGNN (grouped
reversible GENConv blocks, `GraphModelConfig(block="rev")`) on a synthetic graph, and full-graph vs
partitioned inference memory.

    python benchmarks/graph_memory.py                       # 20k nodes, 28 / 112 / 448 layers
    python benchmarks/graph_memory.py --depths 7 28 --nodes 5000 --channels 32
    python benchmarks/graph_memory.py --res-max-depth 0     # also ResGEN-448 (~13 GB on CPU)

On CPU, ResGEN deeper than 112 layers is skipped by default (`--res-max-depth`; its memory grows
linearly, the skipped rows give a linear projection); RevGNN runs at every depth.

Each measurement runs in its own subprocess so that peak memory is that configuration's alone:
on CUDA `torch.cuda.max_memory_allocated`, on CPU the growth of the peak resident set size
(`ru_maxrss`) over the process's RSS after the graph and the model were built (children run with
``MALLOC_MMAP_THRESHOLD_=65536`` so that freed large blocks leave the RSS, as in
`memory_depth.py`). One training step = forward + backward + Adam step on the whole graph (node
classification loss); the peak includes the gradients and Adam's state (3 x the parameters, listed
as ``param_mb``). ResGEN and RevGNN have the same width, depth, aggregation (softmax, learnable
beta), LayerNorm and dropout; RevGNN splits the channels into 2 groups (each GENConv is C/2 wide).

The last line is one JSON object with the measurements and the ratios: ResGEN / RevGNN peak at
each depth, RevGNN deepest / shallowest, ResGEN deepest / shallowest, full-graph / partitioned
inference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def revgnn_model(cfg):
    """RevGNN for GraphModelConfig `cfg`: the same model with grouped reversible blocks (2 groups,
    shared dropout mask, `pointseg.nn.reversible`)."""
    from pointseg.models.graph import GraphDeepGCN

    return GraphDeepGCN(cfg.replace(block="rev", groups=2))


def synthetic_graph(nodes: int, degree: int, features: int, classes: int, seed: int = 0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(nodes, features, generator=gen)
    src = torch.randint(0, nodes, (nodes * degree,), generator=gen)
    dst = torch.randint(0, nodes, (nodes * degree,), generator=gen)
    edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    y = torch.randint(0, classes, (nodes,), generator=gen)
    return x, edge_index, y


def _peak_bytes(device) -> int:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(args: argparse.Namespace) -> dict:
    """One measurement (runs in a subprocess)."""
    import torch
    from torch.nn import functional as F

    from pointseg.models.graph import GraphDeepGCN, GraphModelConfig

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x, ei, y = synthetic_graph(args.nodes, args.degree, args.features, args.classes)
    cfg = GraphModelConfig(
        in_channels=args.features,
        num_classes=args.classes,
        channels=args.channels,
        num_layers=args.depth,
        norm="layer",
        dropout=0.1,
    )
    model = revgnn_model(cfg) if args.model == "revgnn" else GraphDeepGCN(cfg)
    model.to(device)
    x, ei, y = x.to(device), ei.to(device), y.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    base = _peak_bytes(device) if device.type == "cuda" else _rss_now()
    t0 = time.perf_counter()
    if args.mode == "train":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        loss = F.cross_entropy(model(x, ei), y)
        loss.backward()
        opt.step()
    else:
        model.eval()
        with torch.no_grad():
            if args.parts <= 1:
                model(x, ei)
            else:
                _partitioned_inference(model, x, ei, args.parts)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = _peak_bytes(device) - (0 if device.type == "cuda" else base)
    return {
        "model": args.model,
        "mode": args.mode,
        "depth": args.depth,
        "parts": args.parts,
        "peak_mb": round(max(peak, 0) / 2**20, 1),
        "seconds": round(seconds, 3),
        "params": sum(p.numel() for p in model.parameters()),
        "param_mb": round(sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20, 2),
    }


def _rss_now() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _partitioned_inference(model, x, ei, parts: int):
    """Random node partition; each part's induced subgraph is run through the whole model
    (DeeperGCN's ogbn-proteins inference without its multi-view averaging)."""
    import torch
    from torch_geometric.utils import subgraph

    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    out = []
    for nodes in perm.chunk(parts):
        sub, _ = subgraph(nodes.to(ei.device), ei, relabel_nodes=True, num_nodes=x.shape[0])
        out.append(model(x[nodes.to(x.device)], sub))
    return out


def run_child(ns: argparse.Namespace, **kw) -> dict:
    argv = [sys.executable, __file__, "--child"]
    for key, value in {**vars(ns), **kw}.items():
        if key in ("child", "depths", "res_max_depth"):
            continue
        argv += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    res = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if res.returncode != 0:
        return {**kw, "status": f"failed: {res.stderr.strip().splitlines()[-1:]}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--nodes", type=int, default=20000)
    p.add_argument("--degree", type=int, default=2, help="random edges per node (each both ways)")
    p.add_argument("--features", type=int, default=8)
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--depths", type=int, nargs="+", default=[28, 112, 448])
    p.add_argument("--parts", type=int, default=10, help="partitions for partitioned inference")
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--res-max-depth",
        type=int,
        default=None,
        help="skip ResGEN training deeper than this (its memory grows linearly: 448 layers at the "
        "default size need ~13 GB); the skipped rows give a linear projection. Default: 112 on "
        "CPU, no limit on CUDA; 0 = no limit",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="resgen", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="train", help=argparse.SUPPRESS)
    p.add_argument("--depth", type=int, default=28, help=argparse.SUPPRESS)
    ns = p.parse_args()
    if ns.child:
        print(json.dumps(child(ns)))
        return
    if ns.res_max_depth is None:
        ns.res_max_depth = 112 if ns.device == "cpu" else 0
    rows = []
    for depth in ns.depths:
        for model in ("resgen", "revgnn"):
            if model == "resgen" and ns.res_max_depth and depth > ns.res_max_depth:
                r = {"model": model, "mode": "train", "depth": depth, "status": "skipped"}
                done = [x for x in rows if x.get("model") == "resgen" and "peak_mb" in x]
                if done:  # linear in depth (measured below): extrapolate from the deepest run
                    r["projected_mb"] = round(done[-1]["peak_mb"] * depth / done[-1]["depth"])
            else:
                r = run_child(ns, model=model, mode="train", depth=depth, parts=1)
            rows.append(r)
            print(
                f"train {model:7s} L={depth:4d}: {r.get('peak_mb', '—')} MB, {r.get('seconds', '—')} s "
                f"{r.get('status', '')} {r.get('projected_mb', '')}",
                file=sys.stderr,
            )
    depth = ns.depths[-1] if len(ns.depths) == 1 else ns.depths[1]
    inf = {}
    for parts in (1, ns.parts):
        r = run_child(ns, model="resgen", mode="infer", depth=depth, parts=parts)
        inf[parts] = r
        rows.append(r)
        print(
            f"infer resgen L={depth} parts={parts}: {r.get('peak_mb', '—')} MB, "
            f"{r.get('seconds', '—')} s",
            file=sys.stderr,
        )

    def train(model):
        return {
            r["depth"]: r
            for r in rows
            if r.get("model") == model and r.get("mode") == "train" and "peak_mb" in r
        }

    res, rev = train("resgen"), train("revgnn")
    ratios = {}
    for d in sorted(set(res) & set(rev)):
        ratios[f"resgen_over_revgnn_peak_{d}"] = round(
            res[d]["peak_mb"] / max(rev[d]["peak_mb"], 1e-9), 2
        )
        ratios[f"revgnn_over_resgen_time_{d}"] = round(
            rev[d]["seconds"] / max(res[d]["seconds"], 1e-9), 2
        )
    for name, m in (("resgen", res), ("revgnn", rev)):
        if len(m) >= 2:
            lo, hi = min(m), max(m)
            ratios[f"{name}_peak_{hi}_over_{lo}"] = round(
                m[hi]["peak_mb"] / max(m[lo]["peak_mb"], 1e-9), 2
            )
    if "peak_mb" in inf.get(1, {}) and "peak_mb" in inf.get(ns.parts, {}):
        ratios["inference_full_over_partitioned"] = round(
            inf[1]["peak_mb"] / max(inf[ns.parts]["peak_mb"], 1e-9), 2
        )
    print(_table(rows), file=sys.stderr)
    print(
        json.dumps(
            {
                "device": ns.device,
                "nodes": ns.nodes,
                "edges": 2 * ns.degree * ns.nodes,
                "channels": ns.channels,
                "rows": rows,
                "ratios": ratios,
            }
        )
    )


def _table(rows: list[dict]) -> str:
    """Markdown table of the rows (for docs/graphs.md)."""
    out = [
        "| model | mode | layers | parts | params | param MB | peak MB | seconds |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        peak = r.get("peak_mb")
        if peak is None:
            proj = r.get("projected_mb")
            peak = f"{r.get('status', 'n/a')}" + (f" (~{proj:,} projected)" if proj else "")
        else:
            peak = f"{peak:,}"
        params = f"{r['params']:,}" if "params" in r else "–"
        out.append(
            f"| {r.get('model')} | {r.get('mode')} | {r.get('depth')} | {r.get('parts', 1)} | "
            f"{params} | {r.get('param_mb', '–')} | {peak} | {r.get('seconds', '–')} |"
        )
    return "\n".join(out)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
