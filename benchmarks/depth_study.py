"""Depth study (CPU-sized version of the DeepGCN / RevGNN depth figure): PlainGCN, ResGCN and RevGCN
at 7, 14, 28 and 56 graph layers trained for a fixed number of steps on synthetic S3DIS blocks.

Data: synthetic rooms (`pointseg.data.synthetic.make_room`, all 13 classes) cut into 1 m blocks
with the paper's recipe (`pointseg.data.blocks.room_to_blocks`, 256 points per block here).
Models: `DeepGCN` with 32 channels, k = 8, EdgeConv Conv → ReLU → BN; ResGCN / RevGCN with
dilation cycling 1..4 and stochastic dilation, PlainGCN without dilation (as in the paper); every
model fuses [h_0, h_{L−1}] only (``fusion_layers=ends``: with the paper's all-layer fusion a deep
plain network still trains through its shallow layers' fusion inputs, hiding the depth effect),
fusion 64, one hidden layer of 64. Adam 1e-3, batch 4, the same batches in the same order for
every model; the training loss is recorded per step.

Writes ``reports/depth_study.png`` (loss curves, one panel per depth) and ``depth_study.md`` (final loss
= mean of the last 10 steps, and training accuracy over them), prints the table, and the LAST line
is one JSON object with the final losses. Times are wall-clock on a shared machine.

    python benchmarks/depth_study.py               # ~5-8 min on 2 cores
    python benchmarks/depth_study.py --steps 20 --depths 7 14     # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KINDS = {
    "plain": ("PlainGCN", dict(block="plain", dilation=False, stochastic=False)),
    "res": ("ResGCN", dict(block="res", dilation_cycle=4)),
    # keep_graphs: exact gradients in float32 (rebuilt float32 graphs flip neighbours, see
    # docs/reversible.md); memory is not what this study measures
    "rev": ("RevGCN", dict(block="rev", groups=2, dilation_cycle=4, keep_graphs=True)),
}


def make_blocks(points: int, rooms: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic S3DIS blocks: data (n, points, 9) float32, labels (n, points) int64."""
    from pointseg.data.blocks import room_to_blocks
    from pointseg.data.s3dis import CLASSES
    from pointseg.data.synthetic import make_room

    rng = np.random.default_rng(seed)
    data, label = [], []
    for r in range(rooms):
        room = make_room(rng, ("office", "conferenceRoom")[r % 2], density=0.3)
        xyz = np.concatenate([o.xyz for o in room.objects])
        rgb = np.concatenate([o.rgb for o in room.objects])
        lab = np.concatenate([np.full(len(o.xyz), CLASSES.index(o.cls)) for o in room.objects])
        blocks = room_to_blocks(xyz, rgb, lab.astype(np.uint8), num_point=points, rng=rng)
        data.append(blocks.data)
        label.append(blocks.label)
    return torch.from_numpy(np.concatenate(data)), torch.from_numpy(np.concatenate(label)).long()


def train(kind: str, depth: int, data, label, args) -> dict:
    from pointseg.models import DeepGCN, ModelConfig

    torch.manual_seed(args.seed)
    config = ModelConfig(
        channels=32,
        num_blocks=depth,
        k=8,
        fusion_layers="ends",
        fusion_channels=64,
        head_channels=(64,),
        dropout=0.0,
        **KINDS[kind][1],
    )
    model = DeepGCN(config).train()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    order = torch.Generator().manual_seed(args.seed)
    losses, accs = [], []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RevGCN neighbour flips: counted below instead
        for _ in range(args.steps):
            pick = torch.randperm(len(data), generator=order)[: args.batch]
            x, y = data[pick], label[pick]
            logits = model(x)  # (B, N, 13)
            loss = F.cross_entropy(logits.reshape(-1, 13), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss))
            accs.append(float((logits.argmax(-1) == y).float().mean()))
    tail = min(10, len(losses))
    return {
        "model": kind,
        "depth": depth,
        "losses": losses,
        "final_loss": float(np.mean(losses[-tail:])),
        "final_acc": float(np.mean(accs[-tail:])),
        "first_loss": losses[0],
        "seconds": time.perf_counter() - t0,
        "graph_flips": model.rev.graph_mismatches if model.rev is not None else 0,
    }


def plot(results: list[dict], depths: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(depths), figsize=(4 * len(depths), 3.4), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, depth in zip(axes, depths, strict=True):
        for r in results:
            if r["depth"] == depth:
                ax.plot(r["losses"], label=KINDS[r["model"]][0])
        ax.set_title(f"{depth} layers")
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("training loss")
    axes[0].legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def table(results: list[dict], depths: list[int]) -> str:
    head = "| model | " + " | ".join(f"{d} layers" for d in depths) + " |"
    lines = [head, "|---|" + "---:|" * len(depths)]
    for kind in KINDS:
        cells = []
        for d in depths:
            r = next((r for r in results if r["model"] == kind and r["depth"] == d), None)
            cells.append(
                "–" if r is None else f"{r['final_loss']:.3f} ({100 * r['final_acc']:.0f}%)"
            )
        if any(c != "–" for c in cells):
            lines.append(f"| {KINDS[kind][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", nargs="+", type=int, default=[7, 14, 28, 56])
    parser.add_argument("--models", nargs="+", default=list(KINDS), choices=sorted(KINDS))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--points", type=int, default=256)
    parser.add_argument("--rooms", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "reports" / "depth_study"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from tqdm.auto import tqdm

    from pointseg.io import atomic_write_text

    data, label = make_blocks(args.points, args.rooms, args.seed)
    print(f"{len(data)} synthetic blocks of {args.points} points")
    results = []
    runs = [(m, d) for d in args.depths for m in args.models]
    for kind, depth in tqdm(runs, desc="models"):
        r = train(kind, depth, data, label, args)
        results.append(r)
        tqdm.write(
            f"{KINDS[kind][0]}-{depth}: loss {r['first_loss']:.3f} -> {r['final_loss']:.3f}, "
            f"acc {r['final_acc']:.2f}, {r['seconds']:.0f} s"
        )
    text = table(results, args.depths)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".md"), text + "\n")
    plot(results, args.depths, out.with_suffix(".png"))
    summary = {
        "final_loss": {f"{r['model']}{r['depth']}": round(r["final_loss"], 4) for r in results},
        "final_acc": {f"{r['model']}{r['depth']}": round(r["final_acc"], 4) for r in results},
        "steps": args.steps,
        "seconds": {f"{r['model']}{r['depth']}": round(r["seconds"], 1) for r in results},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
