"""Where the time of a whole-room evaluation with the converted DGCNN goes.

    python benchmarks/pretrained_eval.py --checkpoint dgcnn_s3dis_area5.pt --cache <room cache> \
        [--area 5] [--stride 0.5] [--batch-size 8] [--threads 2]

Runs the whole-room protocol of `pointseg eval` (`predict_room`: the same blocks, batches, voting and
back-projection) on every room of the area and splits its wall time into: the three kNN graphs, the
three EdgeConv layers, the fusion + prediction head, and everything outside the network (making the
blocks, voting, kd-tree back-projection). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections import defaultdict
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--area", type=int, default=5)
    ap.add_argument("--stride", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from pointseg.checkpoint import model_from_checkpoint
    from pointseg.data.s3dis import list_rooms, load_room
    from pointseg.engine.evaluate import predict_room
    from pointseg.recipe import checkpoint_recipe

    model, ckpt = model_from_checkpoint(args.checkpoint)
    recipe = checkpoint_recipe(ckpt, args.checkpoint)
    spent: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        def run(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] += time.perf_counter() - t

        return run

    model.graph = timed("kNN graphs (3 per block)", model.graph)
    for i, conv in enumerate(model.convs):
        conv.forward = timed(f"EdgeConv layer {i + 1}", conv.forward)
    model.head.forward = timed("fusion + prediction head", model.head.forward)

    rows = []
    total_points = total_blocks = 0
    t_all = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    for r in list_rooms(args.cache, [args.area]):
        room = load_room(Path(args.cache) / r["file"])
        t = time.perf_counter()
        res = predict_room(
            model, room["xyz"], room["rgb"], num_classes=model.config.num_classes,
            num_point=recipe.num_point, block_size=recipe.block_size, stride=args.stride,
            min_points=recipe.min_points, centering=recipe.centering,
            batch_size=args.batch_size, seed=0,
        )  # fmt: skip
        dt = time.perf_counter() - t
        n = len(room["xyz"])
        oa = float((res.pred == room["label"]).mean())
        rows.append(
            {"room": r["room"], "points": n, "blocks": res.num_blocks, "seconds": dt, "oa": oa}
        )
        total_points += n
        total_blocks += res.num_blocks
    wall = time.perf_counter() - t_all
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    user, system = ru1.ru_utime - ru0.ru_utime, ru1.ru_stime - ru0.ru_stime
    faults = ru1.ru_minflt - ru0.ru_minflt
    network = sum(spent.values())
    spent["outside the network (blocks, voting, back-projection, loading)"] = wall - network

    print(f"{'room':<20} {'points':>9} {'blocks':>7} {'seconds':>8} {'OA %':>6}")
    for r in rows:
        print(
            f"{r['room']:<20} {r['points']:>9,} {r['blocks']:>7} {r['seconds']:>8.1f} {100 * r['oa']:>6.2f}"
        )
    print(f"\nwhole-room evaluation: {wall:.1f} s for {total_points:,} points, {total_blocks} blocks "
          f"({total_points / wall:,.0f} points/s, {wall / max(total_blocks, 1):.2f} s per block), "
          f"{torch.get_num_threads()} threads; CPU {user:.1f} s user + {system:.1f} s system "
          f"({(user + system) / wall:.2f} cores busy on average), {faults:,} minor page faults")  # fmt: skip
    print(f"{'part':<66} {'seconds':>8} {'share':>6}")
    for name, s in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"{name:<66} {s:>8.1f} {100 * s / wall:>5.1f}%")
    print(json.dumps({"wall_s": round(wall, 2), "user_s": round(user, 2), "system_s": round(system, 2),
                      "minor_faults": faults, "points": total_points, "blocks": total_blocks,
                      "threads": torch.get_num_threads(), "stride": args.stride,
                      "parts_s": {k: round(v, 2) for k, v in spent.items()}, "rooms": rows}))  # fmt: skip


if __name__ == "__main__":
    main()
