"""`pointseg <command>`: one sub-module per command group under `pointseg.commands`.

Each command module exposes `register(subparsers)`, which adds its parsers and sets
`func=<callable(args) -> int>` on them. User errors (`PointsegError`, `ValueError` from argument
checks, missing files) are printed as one clear message with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Order = order in `pointseg --help`.
COMMAND_MODULES = [
    "models",
    "convert",
    "synth",
    "prepare",
    "blocks",
    "train",
    "evaluate",
    "predict",
    "demo",
    "view",
    "info",
]


def build_parser() -> argparse.ArgumentParser:
    from pointseg import __version__

    parser = argparse.ArgumentParser(
        prog="pointseg",
        description="DeepGCNs for point clouds: data preparation, training, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"pointseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        # Every listed command module must import: a broken one is an error here, not a command
        # that silently disappears from `pointseg --help`.
        module = importlib.import_module(f"pointseg.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pointseg.errors import PointsegError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PointsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"error: file not found: {exc.filename or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
