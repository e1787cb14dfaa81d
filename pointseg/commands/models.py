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
    """One row per registered preset (point-cloud, then graph), test-only presets left out."""
    from pointseg.models import get_config, list_models
    from pointseg.models.registry import preset_description

    rows = []
    for name in list_models(pattern, kind="point", include_hidden=False):
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


def _needs_missing_ogb(c) -> bool:
    """The OGB atom / bond encoders are sized by `ogb`'s feature tables: no `ogb`, no count."""
    if c.node_encoder != "atom" and c.edge_encoder != "bond":
        return False
    try:
        from pointseg.runtime import import_ogb

        import_ogb()
    except ImportError:
        return True
    return False


def graph_preset_rows(pattern: str | None = None) -> list[dict]:
    """Rows for the sparse-graph presets (`pointseg.models.graph_presets`)."""
    import sys

    from pointseg.models import get_config, list_models
    from pointseg.models.graph import count_parameters as graph_parameters
    from pointseg.models.registry import preset_description

    rows = []
    for name in list_models(pattern, kind="graph", include_hidden=False):
        c = get_config(name)
        if _needs_missing_ogb(c):
            # Deliberate: the table still lists the preset; its count needs ogb's tables.
            print(f"note: {name}: parameter count needs `pip install ogb`", file=sys.stderr)
            params = None
        else:
            params = graph_parameters(c)  # linear in depth: no 1000-layer build
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
                "description": preset_description(name),
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
        cells.append(
            [
                ("n/a" if r[key] is None else f"{r[key]:,}") if key == "params" else str(r[key])
                for key, _, _ in cols
            ]
        )
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
        if getattr(config, "kind", None) == "graph":
            from pointseg.models.graph import count_parameters as graph_parameters

            params = None if _needs_missing_ogb(config) else graph_parameters(config)
        else:
            params = count_parameters(config)
        info = {"name": args.show, "params": params, **config.to_dict()}
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            width = max(map(len, info))
            for key, value in info.items():
                shown = f"{value:,}" if key == "params" and value is not None else value
                print(f"{key:<{width}}  {shown}")
        return 0
    rows = preset_rows(args.pattern)
    if not rows:
        raise ConfigError(f"no model preset matches {args.pattern!r}; run `pointseg models`")
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
    return 0
