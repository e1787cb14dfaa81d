"""`pointseg synth`: write synthetic datasets (S3DIS rooms, ModelNet meshes) for demos and tests."""

from __future__ import annotations

import argparse
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    synth = subparsers.add_parser(
        "synth",
        help="write synthetic S3DIS rooms or ModelNet meshes (demo / test data)",
        description="Write synthetic datasets in the on-disk layouts of the real ones.",
    )
    datasets = synth.add_subparsers(dest="dataset", metavar="<dataset>")

    s3dis = datasets.add_parser(
        "s3dis",
        help="rooms in the raw Stanford layout Area_N/<room>/Annotations/<class>_<i>.txt",
        description=(
            "Write synthetic S3DIS rooms in the raw Stanford layout: "
            "<out>/Area_<a>/<room>/Annotations/<class>_<i>.txt (x y z r g b per line) and "
            "<out>/Area_<a>/<room>/<room>.txt. Every room holds all 13 classes. Same seed, same "
            "bytes. Prepare them like real data: pointseg prepare s3dis --raw <out>."
        ),
    )
    s3dis.add_argument("--out", required=True, help="output folder (gets Area_1 … Area_N)")
    s3dis.add_argument("--areas", type=int, default=6, help="number of areas (default: 6)")
    s3dis.add_argument("--rooms-per-area", type=int, default=2, help="rooms per area (default: 2)")
    s3dis.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    s3dis.add_argument(
        "--density",
        type=float,
        default=1.0,
        help="scales points per m² of surface (1.0 = 300/m², ~20k-60k points per room)",
    )
    s3dis.add_argument("--no-progress", action="store_true", help="no progress bar")
    s3dis.set_defaults(func=run_s3dis)

    modelnet = datasets.add_parser(
        "modelnet",
        help="meshes in the ModelNet layout <class>/{train,test}/<class>_<i>.off",
        description=(
            "Write primitive-composed triangle meshes in the ModelNet layout "
            "<out>/<class>/{train,test}/<class>_<0001>.off. Same seed, same bytes."
        ),
    )
    modelnet.add_argument("--out", required=True, help="output folder")
    modelnet.add_argument(
        "--classes",
        nargs="+",
        default=None,
        metavar="NAME",
        help="classes to write (default: all available; see --list-classes)",
    )
    modelnet.add_argument(
        "--per-class", type=int, default=20, help="training meshes per class (default: 20)"
    )
    modelnet.add_argument(
        "--test-per-class",
        type=int,
        default=None,
        help="test meshes per class (default: per-class // 4, at least 1)",
    )
    modelnet.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    modelnet.add_argument(
        "--list-classes", action="store_true", help="print the available classes and exit"
    )
    modelnet.add_argument("--no-progress", action="store_true", help="no progress bar")
    modelnet.set_defaults(func=run_modelnet)

    synth.set_defaults(func=lambda args: (synth.print_help(), 2)[1])


def run_s3dis(args: argparse.Namespace) -> int:
    from pointseg.data.synthetic import synth_s3dis

    t0 = time.perf_counter()
    rooms = synth_s3dis(
        args.out,
        areas=args.areas,
        rooms_per_area=args.rooms_per_area,
        seed=args.seed,
        density=args.density,
        progress=not args.no_progress,
    )
    elapsed = time.perf_counter() - t0
    points = 0
    for room in rooms:
        # Lines of the room-level file = points of the room.
        with open(room / f"{room.name}.txt", "rb") as fh:
            points += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    print(
        f"wrote {len(rooms)} rooms in {args.areas} areas ({points:,} points) to {args.out} "
        f"in {elapsed:.1f} s\nnext: pointseg prepare s3dis --raw {args.out} --out <cache>"
    )
    return 0


def run_modelnet(args: argparse.Namespace) -> int:
    from pointseg.data.synthetic import MODELNET_SYNTH_CLASSES, synth_modelnet

    if args.list_classes:
        print(" ".join(MODELNET_SYNTH_CLASSES))
        return 0
    t0 = time.perf_counter()
    paths = synth_modelnet(
        args.out,
        classes=args.classes,
        per_class=args.per_class,
        test_per_class=args.test_per_class,
        seed=args.seed,
        progress=not args.no_progress,
    )
    classes = sorted({p.parent.parent.name for p in paths})
    print(
        f"wrote {len(paths)} meshes of {len(classes)} classes ({', '.join(classes)}) to "
        f"{args.out} in {time.perf_counter() - t0:.1f} s"
    )
    return 0
