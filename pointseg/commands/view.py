"""`pointseg view`: compare ground truth and models on one room (Open3D window, screenshot,
matplotlib figure, PLY export), or a grid of ModelNet shapes. The code lives in the `visualize`
package (installed next to `pointseg`); Open3D is imported only there, and only when a window or
screenshot is asked for.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """examples:
  pointseg view reports/demo                                  # the demo's test room, 3 panels
  pointseg view checkpoints/plain/eval_area5 checkpoints/res/eval_area5 --room office_1
  pointseg view data/s3dis/Area_5/office_1.npz --checkpoint checkpoints/plain checkpoints/res
  pointseg view reports/demo --screenshot shot.png --view iso --color errors   # headless (Xvfb)
  pointseg view reports/demo --no-window --screenshot figure.png             # no OpenGL at all
  pointseg view reports/demo --export-ply out/                                # one PLY per panel
  pointseg view checkpoints/<modelnet run>/eval_modelnet40 --shapes 24         # ModelNet grid
  pointseg view reports/demo --web                     # browser, http://localhost:8080 (ssh -L)
  pointseg view reports/demo --export-html comparison.html   # one self-contained HTML file
"""


def _non_negative(s: str) -> float:
    v = float(s)
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0; got {s}")
    return v


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {s}")
    return v


def _port(s: str) -> int:
    v = int(s)
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535; got {s}")
    return v


def register(subparsers: argparse._SubParsersAction) -> None:
    from visualize.scene import COLORINGS, VIEWS

    p = subparsers.add_parser(
        "view",
        help="compare ground truth / PlainGCN / ResGCN side by side (Open3D, browser, screenshots, PLY)",
        description=(
            "Show one room's ground truth and any number of models' predictions side by side in one "
            "Open3D window (one camera), with key bindings to switch colourings; or write a "
            "screenshot (--screenshot, works headless under Xvfb), a matplotlib figure "
            "(--no-window) or one PLY per panel (--export-ply); or in a browser: served from this "
            "machine (--web, for remote servers) or as one self-contained HTML file (--export-html)."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="demo report folder, eval output (eval_area<k>), prediction .npz, room cache file or "
        "root (+ --room), raw room folder, .ply file, or a ModelNet eval output",
    )
    p.add_argument("--room", help="room to show: office_1, Area_5/office_1 or Area_5_office_1")
    p.add_argument(
        "--name",
        dest="names",
        action="extend",
        nargs="+",
        default=[],
        metavar="NAME",
        help="panel names of the models, in order (default: run / model folder names)",
    )
    p.add_argument(
        "--checkpoint",
        dest="checkpoints",
        action="extend",
        nargs="+",
        default=[],
        metavar="CKPT",
        help="predict the room with these checkpoints (files or run folders), one panel each",
    )
    p.add_argument("--color", choices=COLORINGS, default="pred", help="colouring (default pred)")
    p.add_argument(
        "--diff",
        nargs=2,
        metavar=("A", "B"),
        help="the two models compared by --color diff (default: first and last)",
    )
    p.add_argument("--view", choices=VIEWS, default="top", help="camera (default top)")
    p.add_argument(
        "--screenshot",
        metavar="PNG",
        help="render without interaction and exit (Open3D; starts Xvfb when there is no display)",
    )
    p.add_argument(
        "--no-window",
        action="store_true",
        help="draw with matplotlib instead of Open3D (no OpenGL needed); writes --screenshot or "
        "pointseg_view.png",
    )
    p.add_argument("--export-ply", metavar="DIR", help="write one binary PLY per panel to DIR")
    p.add_argument(
        "--voxel",
        type=_non_negative,
        default=None,
        metavar="M",
        help="display downsample voxel in metres (0 = off; default: automatic above "
        "3 M points in all panels); metrics and exports use every point",
    )
    p.add_argument("--point-size", type=float, default=None, help="point size (pixels)")
    web = p.add_argument_group("browser (--web / --export-html; docs/viewer.md)")
    web.add_argument(
        "--web",
        action="store_true",
        help="serve the comparison to a browser (127.0.0.1 unless --host; prints the URL and the "
        "ssh -L line for a laptop)",
    )
    web.add_argument(
        "--port", type=_port, default=8080, help="--web: port (default 8080; 0 = any free port)"
    )
    web.add_argument(
        "--host",
        default="127.0.0.1",
        help="--web: address to listen on (default 127.0.0.1; anything else is reachable from "
        "other machines, without a password)",
    )
    web.add_argument(
        "--export-html",
        metavar="HTML",
        help="write one self-contained HTML file (data inside; opens offline in any browser)",
    )
    web.add_argument(
        "--budget",
        type=_positive_int,
        default=None,
        metavar="N",
        help="--web / --export-html: points drawn in all panels together (default 1,000,000); "
        "larger rooms are voxel-downsampled for display only",
    )
    web.add_argument("--verbose-web", action="store_true", help="--web: log every request")
    p.add_argument("--show-ceiling", action="store_true", help="do not hide the ceiling")
    p.add_argument("--isolate", metavar="CLASS", help="show only this class (e.g. chair)")
    p.add_argument("--width", type=_positive_int, default=1600, help="image width (default 1600)")
    p.add_argument("--height", type=_positive_int, default=None, help="image height (default: fit)")
    p.add_argument(
        "--stride",
        type=float,
        default=0.5,
        help="--checkpoint: sliding-block stride in metres (default 0.5)",
    )
    p.add_argument("--device", default=None, help="--checkpoint: cpu, cuda, … (default: auto)")
    p.add_argument(
        "--shapes", type=_positive_int, default=24, help="ModelNet: shapes in the grid (default 24)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from pointseg.errors import ConfigError

    inputs = [Path(i) for i in args.inputs]
    from visualize import shapes

    if len(inputs) == 1 and shapes.is_modelnet_eval(inputs[0]):
        if args.web or args.export_html:
            raise ConfigError(
                f"{inputs[0]}: a ModelNet evaluation is shown as a grid of shapes, which the "
                "browser viewer does not draw; use --screenshot or --no-window"
            )
        return shapes.run(args)

    from visualize.scene import check_coloring
    from visualize.sources import load_scene

    scene = load_scene(
        inputs,
        room=args.room,
        names=args.names,
        checkpoints=args.checkpoints,
        stride=args.stride,
        device=args.device,
        progress=not args.no_progress,
        print_fn=_say,
    )
    pair = tuple(args.diff) if args.diff else None
    check_coloring(scene, args.color, pair)
    isolate = None
    if args.isolate is not None:
        if args.isolate not in scene.class_names:
            raise ConfigError(
                f"--isolate: unknown class {args.isolate!r}; classes: {', '.join(scene.class_names)}"
            )
        isolate = scene.class_names.index(args.isolate)
    browser = args.web or args.export_html
    interactive = not (args.screenshot or args.no_window or args.export_ply or browser)

    from visualize.viewer import summary

    print(summary(scene, keys=interactive))
    if args.export_ply:
        from visualize.export import export_ply

        for path in export_ply(scene, args.export_ply, coloring=args.color, pair=pair):
            print(f"wrote {path}")
    payload = None
    if browser:
        from visualize import web

        payload = web.payload_from_args(scene, args, isolate=isolate, pair=pair)
        if args.export_html:
            web.export(payload, args.export_html)
    hide = not args.show_ceiling
    if args.no_window:
        from visualize.static import render_static

        out = render_static(
            scene,
            args.screenshot or "pointseg_view.png",
            coloring=args.color,
            view=args.view,
            hide_ceiling=hide,
            isolate=isolate,
            pair=pair,
        )
        print(f"wrote {out}")
    elif args.screenshot or interactive:
        from visualize.viewer import screenshot, show

        kw = dict(
            coloring=args.color,
            view=args.view,
            hide_ceiling=hide,
            voxel=args.voxel,
            pair=pair,
            width=args.width,
            height=args.height,
            print_fn=_say,
        )
        if args.point_size is not None:
            kw["point_size"] = args.point_size
        if args.screenshot:
            shot = screenshot(scene, args.screenshot, isolate=isolate, **kw)
            print(f"wrote {shot.path}")
        else:
            show(scene, isolate=isolate, **kw)
    if args.web:
        from visualize import web

        web.serve(payload, args, print_fn=lambda s: print(s, flush=True))
    return 0
