"""`pointseg models`: table of the registered model presets (or one preset's full config)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list model presets (name, task, layers, channels, conv, block, parameters)",
        description=(
            "List the registered model presets with their parameter counts, or print the full "
            "config of one preset (--show). Any preset name works with `create_model(name)` and "
            "as the `model` of a training config."
        ),
    )
    parser.add_argument(
        "pattern", nargs="?", default=None, help="shell-style filter, e.g. 'resgcn*' (default: all)"
    )
    parser.add_argument("--show", metavar="NAME", help="print the full config of preset NAME")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def count_parameters(config) -> int:
    """Parameter count of `DeepGCN(config)`, built on the meta device (no memory, no init cost)."""
    import torch

    from pointseg.models import create_model

    with torch.device("meta"):
        model = create_model(config)
    return sum(p.numel() for p in model.parameters())


def preset_rows(pattern: str | None = None) -> list[dict]:
    from pointseg.models import get_config, list_models
    from pointseg.models.registry import preset_description

    rows = []
    for name in list_models(pattern):
        c = get_config(name)
        rows.append(
            {
                "name": name,
                "task": c.task,
                "layers": c.num_blocks,
                "channels": c.channels,
                "k": c.k,
                "conv": c.conv,
                "block": c.block,
                "order": c.order,
                "params": count_parameters(c),
                "description": preset_description(name),
            }
        )
    return rows + graph_preset_rows(pattern)


def graph_preset_rows(pattern: str | None = None) -> list[dict]:
    """Rows for the sparse-graph presets (`pointseg.models.graph`, and those of the task files)."""
    import fnmatch

    import pointseg.tasks  # noqa: F401 - task files register their default presets
    from pointseg.models.graph import GRAPH_MODEL_REGISTRY, count_parameters
    from pointseg.tasks import task_names

    task_names()
    rows = []
    for name in sorted(GRAPH_MODEL_REGISTRY):
        if pattern and not fnmatch.fnmatch(name, pattern):
            continue
        c = GRAPH_MODEL_REGISTRY[name]()
        try:
            params = count_parameters(c)  # linear in depth: no 1000-layer build
        except Exception:  # noqa: BLE001 - e.g. the ogb encoders without `ogb` installed
            params = -1
        rows.append(
            {
                "name": name,
                "task": f"graph-{c.task}",
                "layers": c.num_layers,
                "channels": c.channels,
                "k": "-",
                "conv": c.conv,
                "block": c.block,
                "order": "-",
                "params": params,
                "description": GRAPH_MODEL_REGISTRY[name].__doc__,
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    cols = [
        ("name", "name", "<"),
        ("task", "task", "<"),
        ("layers", "blocks", ">"),
        ("channels", "channels", ">"),
        ("k", "k", ">"),
        ("conv", "conv", "<"),
        ("block", "block", "<"),
        ("order", "order", "<"),
        ("params", "params", ">"),
    ]
    cells = [[h for _, h, _ in cols]]
    for r in rows:
        cells.append([f"{r[key]:,}" if key == "params" else str(r[key]) for key, _, _ in cols])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = []
    for j, row in enumerate(cells):
        line = "  ".join(
            f"{v:{align}{w}}" for v, w, (_, _, align) in zip(row, widths, cols, strict=True)
        )
        lines.append(line.rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from pointseg.errors import ConfigError
    from pointseg.models import get_config

    if args.show:
        config = get_config(args.show)
        info = {"name": args.show, "params": count_parameters(config), **config.to_dict()}
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            width = max(map(len, info))
            for key, value in info.items():
                print(
                    f"{key:<{width}}  {value:,}" if key == "params" else f"{key:<{width}}  {value}"
                )
        return 0
    rows = preset_rows(args.pattern)
    if not rows:
        raise ConfigError(f"no model preset matches {args.pattern!r}; run `pointseg models`")
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
    return 0
