"""PPI (protein-protein interaction graphs; Hamilton et al., 2017): 121-label multi-label node
classification, micro-F1, 20 train / 2 validation / 2 test graphs, 50 features per node.

Read offline from PyG's PPI layout, ``<root>/raw/{train,valid,test}_{graph.json,feats.npy,
graph_id.npy,labels.npy}`` (``<root>`` may also be the ``raw`` folder): ``graph.json`` is a
networkx node-link graph of all nodes of the split, ``graph_id.npy`` gives each node's graph.
JSON and ``.npy`` files are read without pickles (``allow_pickle=False``) and without networkx;
edges become undirected and self loops are dropped, as in PyG's `PPI` (tested equal). Loss: BCE over the 121 labels. Metric: micro-F1
over every (node, label) pair of the split, 2·TP / (2·TP + FP + FN) with prediction = logit > 0
(tested equal to scikit-learn's ``f1_score(average="micro")``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from pointseg.errors import DataError
from pointseg.tasks import register_task
from pointseg.tasks.graphs import GraphData, GraphLevelTask

SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}
SUFFIXES = ("graph.json", "feats.npy", "graph_id.npy", "labels.npy")


def find_raw(root: Path) -> Path:
    for cand in (root / "raw", root):
        if (cand / "train_graph.json").is_file():
            missing = [
                f"{p}_{s}"
                for p in SPLIT_FILES.values()
                for s in SUFFIXES
                if not (cand / f"{p}_{s}").is_file()
            ]
            if missing:
                raise DataError(f"{cand}: PPI is incomplete, missing {', '.join(missing)}")
            return cand
    raise DataError(
        f"PPI not found under {root}: expected {root / 'raw'}/{{train,valid,test}}_"
        f"{{{','.join(SUFFIXES)}}} (PyG's PPI layout). On a machine with internet, "
        "`python -c \"from torch_geometric.datasets import PPI; PPI('ppi')\"` downloads it; copy "
        "ppi/raw here."
    )


def _npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise DataError(
            f"{path}: not a readable .npy array ({type(exc).__name__}: {exc})"
        ) from None


def read_ppi_split(raw: Path, prefix: str) -> list:
    """The graphs of one split as PyG `Data` (x float (n, 50), y float (n, 121), edge_index)."""
    from torch_geometric.data import Data
    from torch_geometric.utils import remove_self_loops, to_undirected

    try:
        g = json.loads((raw / f"{prefix}_graph.json").read_text())
        ids = [int(n["id"]) for n in g["nodes"]]
        pos = {nid: i for i, nid in enumerate(ids)}
        links = [(pos[int(e["source"])], pos[int(e["target"])]) for e in g["links"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"{raw / f'{prefix}_graph.json'}: expected a networkx node-link graph "
            f"(nodes[].id, links[].source/target) ({type(exc).__name__}: {exc})"
        ) from None
    x = _npy(raw / f"{prefix}_feats.npy")
    y = _npy(raw / f"{prefix}_labels.npy")
    gid = _npy(raw / f"{prefix}_graph_id.npy").reshape(-1)
    if not (x.shape[0] == y.shape[0] == gid.shape[0] == len(ids)):
        raise DataError(
            f"{raw}/{prefix}_*: {len(ids)} nodes in graph.json, {x.shape[0]} feature rows, "
            f"{y.shape[0]} label rows, {gid.shape[0]} graph ids (must agree)"
        )
    edge_index = torch.tensor(links, dtype=torch.long).reshape(-1, 2).t()
    edge_index, _ = remove_self_loops(to_undirected(edge_index, num_nodes=len(ids)))
    x_t, y_t, gid_t = (
        torch.from_numpy(x).float(),
        torch.from_numpy(y).float(),
        torch.from_numpy(gid),
    )
    graphs = []
    for g_id in torch.unique(gid_t).tolist():
        nodes = (gid_t == g_id).nonzero().view(-1)
        relabel = torch.full((len(ids),), -1, dtype=torch.long)
        relabel[nodes] = torch.arange(nodes.numel())
        keep = (relabel[edge_index[0]] >= 0) & (relabel[edge_index[1]] >= 0)
        graphs.append(Data(x=x_t[nodes], y=y_t[nodes], edge_index=relabel[edge_index[:, keep]]))
    return graphs


def micro_f1(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Micro-F1 over all (node, label) pairs with prediction = logit > 0 (0 when nothing is
    predicted or present, as scikit-learn with zero_division=0)."""
    pred = logits > 0
    true = y > 0.5
    tp = float((pred & true).sum())
    fp = float((pred & ~true).sum())
    fn = float((~pred & true).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0


class PPITask(GraphLevelTask):
    """Node-level labels on many graphs: mini-batches of whole graphs, outputs per node."""

    name = "ppi"
    level = "node"
    metric = "micro_f1"
    multilabel = True
    description = "PPI multi-label node classification (121 labels), micro-F1"
    data_help = "<root>/raw/{train,valid,test}_{graph.json,feats.npy,graph_id.npy,labels.npy}"
    defaults = {
        "model": "resmrgcn_ppi_small",
        "epochs": 20,
        "batch_size": 1,
        "optimizer": "adam",
        "lr": 5e-3,
        "scheduler": "none",
    }

    def load(self, root: Path) -> GraphData:
        raw = find_raw(Path(root))
        splits = {ours: read_ppi_split(raw, theirs) for ours, theirs in SPLIT_FILES.items()}
        first = splits["train"][0]
        return GraphData(
            splits=splits,
            in_channels=int(first.x.shape[1]),
            num_classes=int(first.y.shape[1]),
            classes=[f"label{i}" for i in range(int(first.y.shape[1]))],
            info={"root": str(root), **{s: len(g) for s, g in splits.items()}},
        )

    def score(self, logits, y) -> float:
        return micro_f1(logits, y)


register_task(PPITask())
