"""Reproduce the measured tables of docs/graphs.md: the per-dataset recipes over several seeds,
the molecule recipe against OGB's GCN baseline, and the depth study on Cora.

Every row is one `pointseg train <task> --seeds …` (`pointseg.engine.seeds.train_seeds`: one run
folder per seed under ``<out>/<row>/``, test metric of the best-validation checkpoint, mean ± sample
std over the seeds). Rows resume: rerun the same command after an interruption and only the
missing seeds train. What each row runs is exactly the task's recipe (pointseg/recipes.py) plus
the flags printed in the table, so each row is also a command a user can type.

    python benchmarks/graph_recipes.py                      # Cora + CiteSeer recipes, 10 seeds
    python benchmarks/graph_recipes.py --full               # + molecules, depth study, plot
    python benchmarks/graph_recipes.py --only depth --plot docs/images/graph_depth.png
    python benchmarks/graph_recipes.py --only mol --mol-epochs 30 --mol-seeds 5

Writes ``<out>/graph_recipes.md`` (the table) and ``<out>/graph_recipes.json``, prints the table,
and the LAST line is one JSON object {"rows": [{"row", "task", "metric", "value", "std", …}]}.
Wall times are on whatever machine runs it (ours: 2 shared CPU cores, see docs/graphs.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = Path(os.environ.get("POINTSEG_SHARED_DATA") or ROOT.parent / "shared" / "data")
MOLS = ("ogbg-molbbbp", "ogbg-molbace", "ogbg-molesol", "ogbg-molfreesolv")
DEPTHS = (3, 16, 64)
# The depth study's models (docs/graphs.md, "Depth"): one recipe for every depth, as DeeperGCN /
# RevGNN prescribe for deep stacks (pre-activation res+ with LayerNorm, low block dropout, a
# smaller learning rate than the shallow recipe, 32 channels to fit the CPU budget).
DEPTH_COMMON = {
    "model": "resgen_planetoid",  # GENConv (DeeperGCN), not Cora's GCNConv recipe
    "model.channels": 32,
    "model.aggr": "mean",
    "model.msg_norm": False,
    "model.input_dropout": 0.6,
    "lr": 0.005,  # 0.01 diverges at 64 layers (training loss stalls at 1.4, val 0.13-0.36)
    "weight_decay": 5e-4,
    "weight_decay_scope": "all",  # every parameter (Cora's GCN recipe decays the first layer only)
}
DEPTH_MODELS = {
    "res+": {"model.block": "res+", "model.dropout": 0.2},
    "rev": {"model.block": "rev", "model.dropout": 0.1},
    "plain": {"model.block": "plain", "model.dropout": 0.2},
}


def rows_for(args) -> list[dict]:
    """The experiments: name, task, --data root, settings (TrainConfig / model keys), seeds."""
    planetoid, ogb = str(args.planetoid), str(args.ogb)
    rows: list[dict] = []
    if "planetoid" in args.only:
        for task in ("cora", "citeseer"):
            rows.append(dict(row=f"{task}", group="planetoid", task=task, data=planetoid,
                             sets={}, seeds=args.seeds))  # fmt: skip
    if "mol" in args.only:
        for task in args.mols:
            for model in args.mol_models:
                sets = {"model": model, "epochs": args.mol_epochs}
                if args.quick_mol:
                    sets = {"model": "resgen_mol" if model == "resgen7_mol" else model,
                            "epochs": args.mol_epochs}  # fmt: skip
                    if model == "gcn5_ogb":
                        sets["model.channels"] = 64
                rows.append(dict(row=f"{task}_{model}", group="mol", task=task, data=ogb,
                                 sets=sets, seeds=args.mol_seeds))  # fmt: skip
    if "depth" in args.only:
        for kind, extra in DEPTH_MODELS.items():
            if kind not in args.kinds:
                continue
            for depth in args.depths:
                sets = {**DEPTH_COMMON, **extra, "model.num_layers": depth,
                        "epochs": args.depth_epochs}  # fmt: skip
                rows.append(dict(row=f"depth_{kind}_{depth}", group="depth", task="cora",
                                 data=planetoid, sets=sets, seeds=args.depth_seeds,
                                 kind=kind, depth=depth))  # fmt: skip
    return rows


def run_row(row: dict, out: Path, threads: int) -> dict:
    from pointseg.engine.seeds import train_seeds
    from pointseg.engine.train import resolve_config

    sets = [f"{k}={v}" for k, v in row["sets"].items()]
    flags = {"data": row["data"], "out_dir": str(out), "run": row["row"], "threads": threads,
             "progress": False, "tensorboard": False}  # fmt: skip
    cfg = resolve_config(row["task"], flags=flags, sets=sets)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the seeds' own summary lines
        summary = train_seeds(cfg, list(range(row["seeds"])))
    st = summary["stats"]
    val_key = f"val_{summary['metric']}"
    return {
        **{k: row[k] for k in ("row", "group", "task") if k in row},
        **{k: row[k] for k in ("kind", "depth") if k in row},
        "model": cfg.model,
        "command": f"pointseg train {row['task']} --seeds {row['seeds']}"
        + "".join(f" --set {s}" for s in sets),
        "metric": summary["metric"],
        "higher_is_better": summary["higher_is_better"],
        "value": summary["value"],
        "std": summary["std"],
        "val": st[val_key]["mean"] if val_key in st else None,
        "val_std": st[val_key]["std"] if val_key in st else None,
        "best_epoch": st["best_epoch"]["mean"],
        "seeds": len(summary["seeds"]),
        "wall_s": summary["wall_s_total"],
        "elapsed_s": time.perf_counter() - t0,
    }


def table(results: list[dict]) -> str:
    lines = [
        "| row | task | model | seeds | val (mean ± std) | test (mean ± std) | metric | best epoch | wall |",
        "|---|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        val = "–" if r["val"] is None else f"{r['val']:.4f} ± {r['val_std']:.4f}"
        lines.append(
            f"| {r['row']} | {r['task']} | {r['model']} | {r['seeds']} | {val} | "
            f"{r['value']:.4f} ± {r['std']:.4f} | {r['metric']}"
            f"{'' if r['higher_is_better'] else ' (lower is better)'} | {r['best_epoch']:.0f} | "
            f"{r['wall_s'] / 60:.1f} min |"
        )
    return "\n".join(lines) + "\n"


def plot_depth(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"res+": "ResGEN (res+)", "rev": "RevGNN (2 groups)", "plain": "PlainGEN"}
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for kind, label in names.items():
        rs = sorted((r for r in results if r.get("kind") == kind), key=lambda r: r["depth"])
        if not rs:
            continue
        x = [r["depth"] for r in rs]
        y = [100 * r["value"] for r in rs]
        e = [100 * r["std"] for r in rs]
        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=label)
    ax.set_xscale("log", base=2)
    xs = sorted({r["depth"] for r in results if "depth" in r})
    ax.set_xticks(xs, [str(d) for d in xs])
    ax.set_xlabel("layers")
    ax.set_ylabel("Cora test accuracy (%)")
    ax.set_title(f"Cora, mean ± std over {rs[0]['seeds'] if rs else '?'} seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--full", action="store_true", help="also molecules and the depth study")
    p.add_argument("--only", nargs="+", choices=["planetoid", "mol", "depth"], default=None)
    p.add_argument("--planetoid", type=Path, default=DATA / "planetoid")
    p.add_argument("--ogb", type=Path, default=DATA / "ogb")
    p.add_argument("--out", type=Path, default=Path("checkpoints/graph_recipes"))
    p.add_argument("--seeds", type=int, default=10, help="Planetoid seeds (default 10)")
    p.add_argument("--mol-seeds", type=int, default=10)
    p.add_argument("--mol-epochs", type=int, default=300, help="default: DeeperGCN's 300")
    p.add_argument("--quick-mol", action="store_true",
                   help="molecules with the --quick models (resgen_mol, GCN at 64 ch)")  # fmt: skip
    p.add_argument("--mols", nargs="+", choices=MOLS, default=list(MOLS))
    p.add_argument("--mol-models", nargs="+", choices=["resgen7_mol", "gcn5_ogb"],
                   default=["resgen7_mol", "gcn5_ogb"])  # fmt: skip
    p.add_argument("--depth-seeds", type=int, default=5)
    p.add_argument("--depth-epochs", type=int, default=300, help="default 300 (docs/graphs.md)")
    p.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS))
    p.add_argument("--kinds", nargs="+", choices=list(DEPTH_MODELS), default=list(DEPTH_MODELS))
    p.add_argument(
        "--plot", type=Path, default=None, help="depth plot (default <out>/graph_depth.png)"
    )
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.only is None:
        args.only = ["planetoid", "mol", "depth"] if args.full else ["planetoid"]
    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    from pointseg.runtime.signals import TrainingInterrupted

    for row in rows_for(args):
        print(
            f"== {row['row']}: {row['task']} {row['sets']} × {row['seeds']} seeds", file=sys.stderr
        )
        try:
            results.append(run_row(row, args.out, args.threads))
        except TrainingInterrupted as exc:
            print(f"interrupted: {exc}; run the same command again to resume", file=sys.stderr)
            return exc.exit_code
        print(table(results[-1:]), file=sys.stderr)
    text = table(results)
    tag = "_".join(args.only) + (
        "" if args.kinds == list(DEPTH_MODELS) else "_" + "_".join(args.kinds)
    )
    (args.out / f"graph_recipes_{tag}.md").write_text(text)
    (args.out / f"graph_recipes_{tag}.json").write_text(json.dumps(results, indent=2) + "\n")
    if any(r["group"] == "depth" for r in results):
        plot = args.plot or args.out / "graph_depth.png"
        plot_depth(results, plot)
        print(f"wrote {plot}", file=sys.stderr)
    print(text)
    print(json.dumps({"rows": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
