"""kNN graphs on dense point / feature tensors: exact kNN and (stochastic) dilation."""

from pointseg.graph.dilation import DilatedKnnGraph, dilated_from_sorted, dilated_knn, select_ranks
from pointseg.graph.knn import check_points, default_chunk_size, knn, knn_ranks

__all__ = [
    "knn",
    "knn_ranks",
    "check_points",
    "default_chunk_size",
    "dilated_knn",
    "dilated_from_sorted",
    "select_ranks",
    "DilatedKnnGraph",
]
