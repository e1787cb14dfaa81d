"""The ``--knn`` flag shared by train / eval / predict (torch-free: imported at CLI start-up)."""

from __future__ import annotations

import argparse

KNN_CHOICES = ("auto", "exact32", "bf16")  # = pointseg.graph.knn.KNN_MODES (a test checks)


def add_knn_argument(parser) -> None:
    """``--knn {auto,exact32,bf16}``."""
    parser.add_argument(
        "--knn", choices=KNN_CHOICES, default=None,
        help="exact kNN path: exact32 (fp32 distance products), bf16 (bf16 candidates, exact fp32 "
        "re-rank, per-row proof; docs/knn.md) or auto (the one measured faster: exact32 on the "
        "CPUs measured so far); default: the model config's `knn` (auto)",
    )  # fmt: skip


def apply_knn_argument(args: argparse.Namespace) -> None:
    """Force the mode ``--knn`` names (a model config's ``knn`` then yields to it)."""
    if getattr(args, "knn", None):
        from pointseg.graph.knn import set_knn_mode

        set_knn_mode(args.knn, force=True)
