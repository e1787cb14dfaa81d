"""`pointseg convert`: original deep_gcns_torch checkpoint → pointseg checkpoint."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an original deep_gcns_torch checkpoint into a pointseg checkpoint",
        description=(
            "Convert a checkpoint of the original deep_gcns_torch dense models (S3DIS "
            "examples/sem_seg_dense or ModelNet examples/modelnet_cls; {'epoch', 'state_dict', "
            "'best_value'}) into a pointseg checkpoint that stores its model config. Channels, "
            "depth, dense/res, classes and head widths are read from the weights; what they cannot "
            "tell (EdgeConv vs MRConv, res vs plain, k) comes from --base and the flags below. "
            "With --verify, the converted model is checked layer by layer against a fixture "
            "recorded from the original code (e.g. resgcn28_original_layers.npz)."
        ),
    )
    parser.add_argument("--original", required=True, help="original checkpoint (.pth)")
    parser.add_argument("--out", required=True, help="pointseg checkpoint to write (.pt)")
    parser.add_argument(
        "--base",
        default=None,
        help="preset supplying what the weights cannot tell "
        "(default: resgcn28, or resgcn28_modelnet for classifiers)",
    )
    parser.add_argument("--conv", choices=["edge", "mr"], help="graph conv of the original model")
    parser.add_argument(
        "--block", choices=["res", "plain"], help="res or plain (dense is detected)"
    )
    parser.add_argument("--k", type=int, help="neighbours per point of the original model")
    parser.add_argument(
        "--dilation",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="dilated kNN (block i uses d=i); default from --base",
    )
    parser.add_argument(
        "--dataset", default=None, help="dataset name stored in the checkpoint meta"
    )
    parser.add_argument(
        "--verify",
        metavar="LAYERS_NPZ",
        help="check layer by layer against a recorded fixture; exit 1 above --tolerance",
    )
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="max relative error for --verify"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pointseg.convert import check_layers, convert_original_file

    overrides = {
        key: getattr(args, key)
        for key in ("conv", "block", "k", "dilation")
        if getattr(args, key) is not None
    }
    if args.block == "plain":  # PlainGCN: d = 1 and no stochastic dilation, as in the original
        overrides.setdefault("dilation", False)
        overrides["stochastic"] = False
    model, path = convert_original_file(
        args.original, args.out, args.base, dataset=args.dataset, **overrides
    )
    c = model.config
    params = sum(p.numel() for p in model.parameters())
    print(
        f"converted {args.original} -> {path}: {c.task}, {c.num_blocks} layers, "
        f"{c.channels} channels, conv={c.conv}, block={c.block}, k={c.k}, "
        f"{c.num_classes} classes, {params:,} parameters"
    )
    if args.verify:
        result = check_layers(model, args.verify)
        worst = max(result["layers"])
        worst_layer = result["layers"].index(worst)
        agreement = result["graph_agreement"]
        print(
            f"verify: max layer relative error {worst:.2e} (layer {worst_layer}), logits "
            f"{result['logits']:.2e}; kNN slots found {min(agreement):.4%} (worst layer) / "
            f"{sum(agreement) / len(agreement):.4%} (mean)"
        )
        if worst > args.tolerance or result["logits"] > args.tolerance:
            print(f"verify FAILED: relative error above {args.tolerance:g}")
            return 1
        print("verify OK")
    return 0
