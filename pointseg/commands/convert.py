"""`pointseg convert`: original deep_gcns_torch or DGCNN S3DIS checkpoint → pointseg checkpoint."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an original deep_gcns_torch or published DGCNN S3DIS checkpoint",
        description=(
            "Convert a published checkpoint into a pointseg checkpoint; the format is recognised "
            "from its keys and shapes. The DGCNN S3DIS models of dgcnn.pytorch "
            "(pretrained/semseg_s3dis/model_<area>.t7) become the dgcnn_s3dis preset with their "
            "input recipe stored. Checkpoints of the original deep_gcns_torch dense models (S3DIS "
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
        "--tolerance", type=float, default=1e-5, help="max relative error for --verify (1e-5)"
    )
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=0.999,
        help="min fraction of the recorded neighbour slots our kNN must find (and, for DGCNN, of "
        "points with the same predicted class end to end) for --verify (0.999)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pointseg.convert import convert_file

    overrides = {
        key: getattr(args, key)
        for key in ("conv", "block", "k", "dilation")
        if getattr(args, key) is not None
    }
    if args.block == "plain":  # PlainGCN: d = 1 and no stochastic dilation, as in the original
        overrides.setdefault("dilation", False)
        overrides["stochastic"] = False
    result = convert_file(
        args.original,
        args.out,
        args.base,
        dataset=args.dataset,
        verify=args.verify,
        tolerance=args.tolerance,
        min_agreement=args.min_agreement,
        **overrides,
    )
    model, c = result["model"], result["config"]
    params = sum(p.numel() for p in model.parameters())
    if result["format"] == "dgcnn_s3dis":
        print(
            f"recognised {args.original}: the published DGCNN S3DIS model (dgcnn.pytorch "
            f"semseg_s3dis) -> preset dgcnn_s3dis, k={c.k}, first graph on input channels "
            f"{c.graph_channels[0]}:{c.graph_channels[1]}, {c.num_classes} classes, {params:,} parameters"
        )
    else:
        print(
            f"recognised {args.original}: original deep_gcns_torch model, {c.task}, "
            f"{c.num_blocks} layers, {c.channels} channels, conv={c.conv}, block={c.block}, "
            f"k={c.k}, {c.num_classes} classes, {params:,} parameters"
        )
    check = result.get("verify")
    if check is not None:
        layers = check["layers"]
        worst = max(layers)
        agreement = check["graph_agreement"]
        print(
            f"verify: layer by layer with the recorded neighbours, max relative error {worst:.2e} "
            f"(layer {layers.index(worst)}); logits from the recorded layer outputs "
            f"{check['logits']:.2e}"
        )
        print(
            f"verify: our kNN finds {min(agreement):.4%} of the recorded neighbour slots (worst "
            f"layer) / {sum(agreement) / len(agreement):.4%} (mean)"
            + (
                f"; by index {min(check['graph_agreement_by_index']):.4%} (the blocks repeat "
                "points, and copies are interchangeable)"
                if "graph_agreement_by_index" in check
                else ""
            )
        )
        if "end_to_end" in check:
            acc = (
                f"; accuracy on the recorded labels {check['accuracy']:.2%} (original "
                f"{check['reference_accuracy']:.2%})"
                if "accuracy" in check
                else ""
            )
            print(
                f"verify: end to end with our own graphs, logits relative error "
                f"{check['end_to_end']:.2e}, same predicted class for "
                f"{check['prediction_agreement']:.3%} of points{acc}"
            )
        if not result["passed"]:
            print(
                f"verify FAILED (relative error > {args.tolerance:g} or agreement < "
                f"{args.min_agreement:.2%}): nothing written"
            )
            return 1
        print("verify OK")
    print(f"wrote {result['path']}")
    return 0
