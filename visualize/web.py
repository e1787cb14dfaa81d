"""`pointseg view --web` / `--export-html`: the comparison in a browser.

Glue between the command line and the browser viewer: `visualize.web_data` (what the page is
sent), `visualize.web_page` (the one self-contained page), `visualize.web_server` (serving it).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from visualize.scene import Scene
from visualize.web_data import WEB_BUDGET, Payload, build_payload
from visualize.web_page import describe, human_size, render_page, write_html

Print = Callable[[str], None]


def payload_from_args(
    scene: Scene, args: argparse.Namespace, *, isolate: int | None, pair
) -> Payload:
    kw = {}
    if args.point_size is not None:
        kw["point_size"] = args.point_size
    return build_payload(
        scene,
        coloring=args.color,
        view=args.view,
        hide_ceiling=not args.show_ceiling,
        isolate=isolate,
        pair=pair,
        budget=args.budget if args.budget is not None else WEB_BUDGET,
        voxel=args.voxel,
        **kw,
    )


def export(payload: Payload, path, print_fn: Print = print) -> int:
    """Write the self-contained page; print its size and what it shows."""
    size = write_html(path, render_page(payload))
    print_fn(f"wrote {path} ({human_size(size)}; {describe(payload)})")
    return size


def serve(payload: Payload, args: argparse.Namespace, print_fn: Print = print) -> None:
    from visualize.web_server import serve as _serve

    print_fn(f"[view] {describe(payload)}")
    _serve(payload, host=args.host, port=args.port, print_fn=print_fn, verbose=args.verbose_web)
