"""`pointseg eval` (S3DIS block-sampled / whole-room, ModelNet40) and `pointseg eval-6fold`."""

from __future__ import annotations

import argparse

from pointseg.commands._knn import add_knn_argument, apply_knn_argument


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {s}")
    return v


def _positive_float(s: str) -> float:
    v = float(s)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0; got {s}")
    return v


def _add_common(p: argparse.ArgumentParser) -> None:
    add_knn_argument(p)
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch intra-op threads (default: torch's choice)",
    )
    p.add_argument(
        "--num-points",
        "--num-point",
        dest="num_points",
        type=_positive_int,
        default=None,
        help="points per block for S3DIS whole-room inference / per shape for ModelNet "
        "(default: the training run's, else the blocks' size or 4096 / 1024)",
    )


def _add_s3dis_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("S3DIS (segmentation checkpoints)")
    g.add_argument(
        "--cache",
        default=None,
        help="room cache of `pointseg prepare s3dis` (default: the training run's, else data/s3dis)",
    )
    g.add_argument(
        "--blocks",
        default=None,
        help="HDF5 blocks root of `pointseg blocks s3dis` or the published indoor3d_sem_seg_hdf5_data folder (default: the training run's, else data/s3dis_blocks)",
    )
    g.add_argument(
        "--protocol",
        choices=["block", "room", "both"],
        default=None,
        help="block = block-sampled (the paper's number), room = whole-room (every original point); default both",
    )
    g.add_argument(
        "--stride",
        type=_positive_float,
        default=None,
        help="sliding-block stride in metres for whole-room voting (default 0.5)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint: S3DIS per-class IoU (block-sampled and whole-room) or ModelNet40 OA/mAcc",
        description=(
            "Evaluate a checkpoint. S3DIS segmentation checkpoints: per-class IoU, OA, mAcc, mIoU for the "
            "block-sampled protocol (sampled points of the HDF5 test blocks, as in the paper) and the whole-room "
            "protocol (every original point; softmax voting over overlapping blocks + kd-tree back-projection). "
            "ModelNet40 classification checkpoints: OA and mean class accuracy, optional test-time voting. "
            "Writes metrics.json, per_class.csv, confusion_<protocol>.csv/.png and per-room predictions to "
            "--out (default <checkpoint dir>/eval_area<k>/)."
        ),
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint file or run folder (uses best.pt, else last.pt)",
    )
    p.add_argument(
        "--area",
        type=int,
        choices=range(1, 7),
        default=None,
        metavar="{1..6}",
        help="S3DIS test area (default: the training run's, else 5)",
    )
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="blocks, shapes or graphs per forward pass (default 8; graph-level tasks: the "
        "training batch); not for full-graph node tasks",
    )
    p.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, … (default: cuda if available, else cpu)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of block sampling / voting augmentations (default 0)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_common(p)
    _add_s3dis_options(p)
    p.add_argument(
        "--no-predictions",
        action="store_true",
        help="S3DIS: do not write predictions/Area_<k>_<room>.npz",
    )
    g = p.add_argument_group("ModelNet40 (classification checkpoints)")
    g.add_argument(
        "--data",
        default=None,
        help="modelnet40_ply_hdf5_2048 folder or ModelNet mesh folder (default: the training run's)",
    )
    g.add_argument(
        "--votes",
        type=_positive_int,
        default=None,
        help="average logits over N random scale/shift augmentations (default 1 = no voting)",
    )
    g = p.add_argument_group("graph node tasks (multi-view inference, e.g. ogbn-proteins)")
    g.add_argument(
        "--views",
        type=_positive_int,
        default=None,
        help="average the logits of N random node partitions (default: the task's, e.g. 10 for "
        "the ogbn-proteins test split; 1 = one partition); --seed picks the partitions",
    )
    g.add_argument(
        "--parts",
        type=_positive_int,
        default=None,
        help="parts per random node partition (default: the task's, e.g. 3; 1 = full graph)",
    )
    p.set_defaults(func=run_eval)

    q = subparsers.add_parser(
        "eval-6fold",
        help="S3DIS 6-fold: pool the confusion matrices of one model per test area",
        description=(
            "Evaluate one S3DIS model per test area (1..6) and pool intersections and unions over the six "
            "areas (sum of confusion matrices; NOT the mean of six mIoUs, which is printed alongside for "
            "comparison). Reuses the confusion matrices of a previous `pointseg eval` of the same checkpoint "
            "when present and matching. Fewer than six runs are pooled with a warning."
        ),
    )
    q.add_argument(
        "--runs", nargs="+", required=True, help="run folders or checkpoints, one per test area"
    )
    q.add_argument(
        "--areas",
        nargs="+",
        type=int,
        default=None,
        help="test area of each run, in --runs order (default: read from each checkpoint)",
    )
    q.add_argument("--out", default=None, help="output folder (default: <runs parent>/eval_6fold)")
    q.add_argument("--batch-size", type=_positive_int, default=8)
    q.add_argument("--device", default=None)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--no-progress", action="store_true")
    q.add_argument("--no-predictions", action="store_true")
    _add_common(q)
    _add_s3dis_options(q)
    q.set_defaults(func=run_six_fold)


def _set_threads(args: argparse.Namespace) -> None:
    apply_knn_argument(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def run_eval(args: argparse.Namespace) -> int:
    from pointseg.engine.evaluate import evaluate_checkpoint
    from pointseg.engine.seeds import evaluate_seeds, is_seeds_parent

    _set_threads(args)
    evaluate = evaluate_seeds if is_seeds_parent(args.checkpoint) else evaluate_checkpoint
    evaluate(
        args.checkpoint,
        area=args.area,
        cache=args.cache,
        blocks=args.blocks,
        protocol=args.protocol,
        stride=args.stride,
        save_predictions=False if args.no_predictions else None,
        data=args.data,
        votes=args.votes,
        views=args.views,
        parts=args.parts,
        num_points=args.num_points,
        out=args.out,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        progress=not args.no_progress,
    )
    return 0


def run_six_fold(args: argparse.Namespace) -> int:
    import warnings

    from pointseg.engine.evaluate import six_fold

    _set_threads(args)
    with warnings.catch_warnings():
        # six_fold prints its own "pooling k of 6 folds" warning line; skip Python's duplicate.
        warnings.simplefilter("ignore", UserWarning)
        _run_six_fold(args, six_fold)
    return 0


def _run_six_fold(args: argparse.Namespace, six_fold) -> None:
    six_fold(
        args.runs,
        areas=args.areas,
        out=args.out,
        cache=args.cache,
        blocks=args.blocks,
        protocol=args.protocol or "both",
        batch_size=args.batch_size,
        num_point=args.num_points,
        stride=args.stride or 0.5,
        device=args.device,
        seed=args.seed,
        save_predictions=not args.no_predictions,
        progress=not args.no_progress,
    )
