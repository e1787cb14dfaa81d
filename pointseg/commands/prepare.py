"""`pointseg prepare s3dis`: raw Stanford rooms -> canonical room cache (npz + index.json)."""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    prepare = subparsers.add_parser(
        "prepare",
        help="convert raw datasets into pointseg's canonical cache",
        description="Convert raw datasets into pointseg's canonical cache.",
    )
    datasets = prepare.add_subparsers(dest="dataset", metavar="<dataset>")
    s3dis = datasets.add_parser(
        "s3dis",
        help="parse raw S3DIS rooms into <out>/Area_N/<room>.npz + index.json",
        description=(
            "Parse every Area_N/<room>/Annotations/<class>_<i>.txt of a raw S3DIS download (v1.2, "
            "aligned or not) into <out>/Area_N/<room>.npz (xyz float32, rgb uint8, label uint8, "
            "instance int32) and <out>/index.json. Corrupt lines are repaired when unambiguous, "
            "otherwise skipped; every one is listed in <out>/prepare_report.jsonl. Resumable: rooms "
            "already prepared and verified are skipped (use --force to redo them). Exit code 1 if "
            "any room failed."
        ),
    )
    s3dis.add_argument(
        "--raw",
        required=True,
        help="Stanford3dDataset_v1.2_Aligned_Version (or v1.2), a folder containing it, or a folder "
        "that directly contains Area_N folders",
    )
    s3dis.add_argument("--out", default="data/s3dis", help="cache folder (default: data/s3dis)")
    s3dis.add_argument(
        "--areas",
        nargs="+",
        default=None,
        metavar="N",
        help="areas to prepare, e.g. 1 2 5 (default: all)",
    )
    s3dis.add_argument(
        "--workers",
        type=int,
        default=max(1, min(4, os.cpu_count() or 1)),
        help="parallel worker processes, one room each (default: min(4, CPUs))",
    )
    s3dis.add_argument("--force", action="store_true", help="redo rooms that are already prepared")
    s3dis.add_argument("--no-progress", action="store_true", help="no progress bar")
    s3dis.add_argument(
        "--max-issues",
        type=int,
        default=20,
        help="issues printed in the summary (all are in the report)",
    )
    s3dis.set_defaults(func=run_s3dis)
    prepare.set_defaults(func=lambda args: (prepare.print_help(), 2)[1])


def run_s3dis(args: argparse.Namespace) -> int:
    from pointseg.data.s3dis import format_summary, normalize_area, prepare_s3dis
    from pointseg.errors import ConfigError

    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    areas = None
    if args.areas:
        try:
            areas = [normalize_area(a) for a in args.areas]
        except ValueError as exc:
            raise ConfigError(f"--areas: {exc}") from exc
    result = prepare_s3dis(
        args.raw,
        args.out,
        areas=areas,
        workers=args.workers,
        force=args.force,
        progress=not args.no_progress,
    )
    print(format_summary(result, max_issues=args.max_issues))
    print(f"cache: {result.out}  index: {result.out / 'index.json'}  report: {result.report_path}")
    if result.failed:
        print(f"error: {len(result.failed)} room(s) failed (see above)", file=sys.stderr)
        return 1
    return 0
