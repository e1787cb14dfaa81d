"""`pointseg demo`: argument parsing only; the pipeline, report and settings are `pointseg.demo`."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pointseg.demo

# Re-exported: code that imported them from this module before `pointseg.demo` existed.
from pointseg.demo import DEMO_DEFAULTS, QUICK_OVERRIDES, demo_config, run_demo  # noqa: F401
from pointseg.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="end-to-end demo: synthetic rooms → prepare → blocks → train PlainGCN & ResGCN → whole-room eval → report",
        description=pointseg.demo.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", help="report folder (default reports/demo; reports/demo-long with --long)"
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny version (< 1 minute) that exercises every stage"
    )
    p.add_argument(
        "--long",
        action="store_true",
        help="train the same pair to convergence (<= 60 minutes on 2 cores: 2x rooms, more "
        "epochs) and report how far the 10-minute demo is from it",
    )
    p.add_argument(
        "--compare",
        metavar="DEMO_JSON",
        help="--long: the 10-minute demo's demo.json to compare with (default reports/demo/demo.json)",
    )
    p.add_argument(
        "--config",
        metavar="YAML",
        help="demo settings to merge over the defaults (see configs/demo.yaml)",
    )
    p.add_argument("--work", metavar="DIR", help="where data and runs go (default <out>/work)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per training process (default 1: the two models train at the same "
        "time, one per core; a 2-thread step of the demo's ResGCN-28 is only ~1.1x faster)",
    )
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm progress bars"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or ("reports/demo-long" if args.long else "reports/demo"))
    compare = args.compare or ("reports/demo/demo.json" if args.long else None)
    if args.compare and not Path(args.compare).exists():
        raise ConfigError(f"--compare {args.compare}: file not found")
    summary = run_demo(
        out,
        quick=args.quick,
        long=args.long,
        compare=compare,
        config=args.config,
        work=args.work,
        threads=args.threads,
        progress=args.progress,
    )
    print(
        "\n[demo] stage times: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in summary["seconds"].items()),
        file=sys.stderr,
    )
    print(
        f"[demo] process CPU time {summary['cpu_seconds']:.0f} s ({summary['threads']} threads)",
        file=sys.stderr,
    )
    for label, r in summary["models"].items():
        print(
            f"[demo] {label}: OA {100 * r['oa']:.2f}  mAcc {100 * r['macc']:.2f}  mIoU {100 * r['miou']:.2f} (whole-room)",
            file=sys.stderr,
        )
    print(out / "report.md")
    return 0 if all(math.isfinite(r["miou"]) for r in summary["models"].values()) else 1
