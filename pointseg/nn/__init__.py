"""Graph convolutions and blocks on dense, channels-last point tensors (one operator per file),
and their sparse ``edge_index`` versions for general graphs (`sparse_conv`, `gen_conv`)."""

from pointseg.nn.blocks import (
    BLOCK_REGISTRY,
    DenseBlock,
    PlainBlock,
    ResBlock,
    ResPlusBlock,
    create_block,
)
from pointseg.nn.conv import CONV_REGISTRY, create_conv
from pointseg.nn.deq import DEQ, DEQCell
from pointseg.nn.edge_conv import EdgeConv, edge_conv_reference, gather_neighbors, neighbor_max
from pointseg.nn.gen_conv import GENConv
from pointseg.nn.gin_conv import GINConv
from pointseg.nn.mlp import Lin, PointBatchNorm, PointMLP, create_act, create_norm
from pointseg.nn.mr_conv import MRConv
from pointseg.nn.reversible import GroupRevBlock, RevGCN, RevGraphFn
from pointseg.nn.sage_conv import SAGEConv
from pointseg.nn.sparse_conv import (
    SPARSE_CONV_REGISTRY,
    SparseEdgeConv,
    SparseGINConv,
    SparseMRConv,
    SparseSAGEConv,
    create_sparse_conv,
    idx_to_edge_index,
)

__all__ = [
    "BLOCK_REGISTRY",
    "CONV_REGISTRY",
    "DEQ",
    "DEQCell",
    "DenseBlock",
    "EdgeConv",
    "GENConv",
    "GINConv",
    "GroupRevBlock",
    "Lin",
    "MRConv",
    "PlainBlock",
    "PointBatchNorm",
    "PointMLP",
    "ResBlock",
    "ResPlusBlock",
    "RevGCN",
    "RevGraphFn",
    "SAGEConv",
    "SPARSE_CONV_REGISTRY",
    "SparseEdgeConv",
    "SparseGINConv",
    "SparseMRConv",
    "SparseSAGEConv",
    "create_act",
    "create_block",
    "create_conv",
    "create_norm",
    "create_sparse_conv",
    "edge_conv_reference",
    "gather_neighbors",
    "idx_to_edge_index",
    "neighbor_max",
]
