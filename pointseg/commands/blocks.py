"""`pointseg blocks s3dis`: room cache → HDF5 blocks in the published indoor3d_sem_seg_hdf5_data format."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    blocks = subparsers.add_parser(
        "blocks",
        help="cut cached rooms into fixed-size point blocks (HDF5)",
        description="Cut cached rooms into fixed-size point blocks (HDF5).",
    )
    datasets = blocks.add_subparsers(dest="dataset", metavar="<dataset>")
    s3dis = datasets.add_parser(
        "s3dis",
        help="S3DIS rooms -> <out>/<split>/ply_data_all_<i>.h5 + room_filelist.txt",
        description=(
            "Cut the rooms of a `pointseg prepare s3dis` cache into 1 m x 1 m blocks of 4096 points "
            "with the DeepGCNs / PointNet recipe (stride 0.5 m for train, 1.0 m for test; blocks with "
            "fewer than 100 points dropped; 9 channels: block-centred x y, absolute z, rgb/255, "
            "xyz / room max) and write them in the published indoor3d_sem_seg_hdf5_data format: "
            "<out>/<split>/ply_data_all_<i>.h5 ('data' [n,4096,9] float32, 'label' [n,4096] uint8, "
            "extra 'index' [n,4096] int32 point indices in the room) and room_filelist.txt "
            "(one Area_N_<room> line per block). Every area is written by default; training and "
            "evaluation select areas from room_filelist.txt. Test blocks cover every point of "
            "each kept block (--cover-all). Resumable: rerunning continues after the last "
            "finished file, and does nothing if the output is complete."
        ),
    )
    s3dis.add_argument("--cache", default="data/s3dis", help="room cache (default: data/s3dis)")
    s3dis.add_argument(
        "--out", default="data/s3dis_blocks", help="output root (default: data/s3dis_blocks)"
    )
    s3dis.add_argument(
        "--split",
        choices=("train", "test", "both"),
        default="both",
        help="which block set to write (default: both)",
    )
    s3dis.add_argument(
        "--stride",
        type=float,
        default=None,
        help="column stride in metres (default: 0.5 for train, 1.0 for test)",
    )
    s3dis.add_argument("--block-size", type=float, default=1.0, help="block side in metres (1.0)")
    s3dis.add_argument("--num-point", type=int, default=4096, help="points per block (4096)")
    s3dis.add_argument(
        "--min-points", type=int, default=100, help="drop blocks with fewer points (100)"
    )
    s3dis.add_argument(
        "--areas", nargs="+", default=None, metavar="N", help="areas to include (default: all)"
    )
    s3dis.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    s3dis.add_argument(
        "--blocks-per-file", type=int, default=1000, help="blocks per HDF5 file (1000)"
    )
    s3dis.add_argument(
        "--cover-all",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="split big blocks so every point of a kept block is sampled "
        "(default: on for test, off for train)",
    )
    s3dis.add_argument(
        "--centering",
        choices=("points", "sampled", "cell"),
        default="points",
        help="x, y centre: min over the block's points + half size (default), min over each "
        "sample's points (PointNet's own code, as DGCNN was trained), or the grid-cell centre",
    )
    s3dis.add_argument(
        "--overwrite",
        action="store_true",
        help="rewrite an output folder that is complete or was made with other parameters",
    )
    s3dis.add_argument("--no-progress", action="store_true", help="no progress bar")
    s3dis.set_defaults(func=run_s3dis)
    blocks.set_defaults(func=lambda args: (blocks.print_help(), 2)[1])


def run_s3dis(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pointseg.data.blocks import make_s3dis_blocks, parse_areas
    from pointseg.errors import ConfigError, DataError

    for name in ("block_size", "num_point", "min_points", "blocks_per_file"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if args.stride is not None and args.stride <= 0:
        raise ConfigError(f"--stride must be > 0, got {args.stride}")
    try:
        areas = parse_areas(args.areas)
    except ValueError as exc:
        raise ConfigError(f"--areas: {exc}") from exc
    if not (Path(args.cache) / "index.json").is_file():
        raise DataError(
            f"no S3DIS room cache at {args.cache} (index.json missing): run "
            f"`pointseg prepare s3dis --raw <Stanford3dDataset_v1.2_Aligned_Version> --out {args.cache}` first"
        )
    splits = ("train", "test") if args.split == "both" else (args.split,)
    for split in splits:
        m = make_s3dis_blocks(
            args.cache,
            args.out,
            split=split,
            stride=args.stride,
            block_size=args.block_size,
            num_point=args.num_point,
            min_points=args.min_points,
            areas=areas,
            seed=args.seed,
            blocks_per_file=args.blocks_per_file,
            cover_all=args.cover_all,
            centering=args.centering,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
        p = m["params"]
        dropped = sum(r["dropped_points"] for r in m["rooms"])
        points = sum(r["points"] for r in m["rooms"])
        print(
            f"{split}: {m['blocks']} blocks from {len(m['rooms'])} rooms in {len(m['files'])} files "
            f"-> {Path(args.out) / split} (stride {p['stride']}, cover_all={p['cover_all']}); "
            f"{dropped} of {points} points lie only in dropped (<{p['min_points']} points) blocks"
        )
    return 0
