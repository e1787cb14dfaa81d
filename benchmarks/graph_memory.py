"""Peak memory and step time of deep res+ GENConv models (ResGEN) on a synthetic graph, and
full-graph vs partitioned inference memory.

    python benchmarks/graph_memory.py                       # 20k nodes, 28 / 112 / 448 layers
    python benchmarks/graph_memory.py --depths 7 28 --nodes 5000 --channels 32

Each measurement runs in its own subprocess so that peak memory is that configuration's alone:
on CUDA `torch.cuda.max_memory_allocated`, on CPU the growth of the peak resident set size
(`ru_maxrss`) over the process's baseline after the graph and the model were built. One training
step = forward + backward + Adam step on the whole graph (node classification loss).

RevGNN (reversible GENConv blocks, memory flat in depth) is written on the `rev` branch. This
script measures it through the `REVGNN` hook below when `pointseg.nn.reversible` is importable
and otherwise reports it as "n/a"; ResGEN is the baseline it must beat.

The last line is one JSON object with the measurements and the ratios (memory of the deepest vs
the shallowest ResGEN; full-graph vs partitioned inference).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def revgnn_model(cfg):
    """HOOK for the `rev` branch: return a RevGNN model for GraphModelConfig `cfg`, or None.

    Expected once reversible blocks land: ``block="rev"`` (grouped reversible GENConv blocks with
    a shared dropout mask) built by `GraphDeepGCN`. Until then this returns None (reported n/a).
    """
    try:
        import pointseg.nn.reversible  # noqa: F401
    except ImportError:
        return None
    from pointseg.models.graph import GRAPH_BLOCKS, GraphDeepGCN

    if "rev" not in GRAPH_BLOCKS:
        return None
    return GraphDeepGCN(cfg.replace(block="rev"))


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
    if model is None:
        return {"model": args.model, "depth": args.depth, "status": "n/a (rev branch not merged)"}
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
        if key in ("child", "depths"):
            continue
        argv += [f"--{key.replace('_', '-')}", str(value)]
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return {**kw, "status": f"failed: {res.stderr.strip().splitlines()[-1:]}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--nodes", type=int, default=20000)
    p.add_argument("--degree", type=int, default=5, help="random edges per node (each both ways)")
    p.add_argument("--features", type=int, default=8)
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--depths", type=int, nargs="+", default=[28, 112, 448])
    p.add_argument("--parts", type=int, default=10, help="partitions for partitioned inference")
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="resgen", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="train", help=argparse.SUPPRESS)
    p.add_argument("--depth", type=int, default=28, help=argparse.SUPPRESS)
    ns = p.parse_args()
    if ns.child:
        print(json.dumps(child(ns)))
        return
    rows = []
    for depth in ns.depths:
        for model in ("resgen", "revgnn"):
            r = run_child(ns, model=model, mode="train", depth=depth, parts=1)
            rows.append(r)
            print(
                f"train {model:7s} L={depth:4d}: {r.get('peak_mb', '—')} MB, {r.get('seconds', '—')} s "
                f"{r.get('status', '')}",
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
    res = [
        r
        for r in rows
        if r.get("model") == "resgen" and r.get("mode") == "train" and "peak_mb" in r
    ]
    ratios = {}
    if len(res) >= 2:
        ratios["resgen_peak_deepest_over_shallowest"] = round(
            res[-1]["peak_mb"] / max(res[0]["peak_mb"], 1e-9), 2
        )
        ratios["resgen_depth_ratio"] = res[-1]["depth"] / res[0]["depth"]
    if "peak_mb" in inf.get(1, {}) and "peak_mb" in inf.get(ns.parts, {}):
        ratios["inference_full_over_partitioned"] = round(
            inf[1]["peak_mb"] / max(inf[ns.parts]["peak_mb"], 1e-9), 2
        )
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


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
