"""OGB node property prediction: `ogbn-arxiv` (40-class accuracy, full batch) and `ogbn-proteins`
(112 binary labels, ROC-AUC, random node partitions for training), DeeperGCN's settings.

Read offline from OGB's raw layout ``<root>/ogbn_<name>/raw/{edge,node-feat|edge-feat,node-label,
num-node-list,num-edge-list}.csv.gz`` and ``split/<time|species>/{train,valid,test}.csv.gz``
with the pandas reader of `pointseg.tasks.ogbg` (no ogb dataset classes: see there why).
As in DeeperGCN, the graph is made undirected (arxiv is a citation graph stored one way; proteins'
edges are listed once and OGB adds the inverse). ogbn-proteins has no node features: a node's
input is the mean of the 8-dimensional features of its incident edges (DeeperGCN's choice).
Proteins' 8 edge features are kept as ``edge_attr`` (both directions) for models that use them
(GENConv with ``edge_encoder: linear``, as DeeperGCN / RevGNN's ``--conv_encode_edge``).
Training on proteins draws a fresh random partition of the nodes into `parts` parts every epoch
and takes one step per part on its induced subgraph (from the seeded per-epoch generator, so
resume stays exact). Inference on proteins is partitioned too (the full graph, 79 M directed
edges, does not fit a deep model's messages): validation averages 1 view of 5 random parts
(DeeperGCN's ``--valid_cluster_number 5``), the test split 10 views of 3 parts (RevGNN's multi-view
test, ``--num_evals 10 --valid_cluster_number 3``); `pointseg eval --views V --parts P --seed S`
overrides it (`NodeTask.predict`).
Metrics: OGB's `Evaluator` (accuracy for arxiv, ROC-AUC for proteins).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pointseg.errors import DataError
from pointseg.runtime import import_ogb
from pointseg.tasks import register_task
from pointseg.tasks.graphs import Batch, GraphData, NodeTask, induced_subgraph
from pointseg.tasks.ogbg import _csv


def _evaluator(name: str):
    try:
        Evaluator = import_ogb("ogb.nodeproppred").Evaluator
    except ImportError as exc:
        raise DataError(
            f"{name} needs the `ogb` package: pip install 'ogb==1.3.6' ({exc})"
        ) from None
    return Evaluator(name)


def find_dataset(root: Path, name: str, needed: tuple[str, ...]) -> tuple[Path, Path]:
    folder = name.replace("-", "_")
    for cand in (root / folder, root):
        if (cand / "raw" / "edge.csv.gz").is_file():
            missing = [
                f"raw/{f}.csv.gz" for f in needed if not (cand / "raw" / f"{f}.csv.gz").is_file()
            ]
            splits = sorted(p.parent for p in (cand / "split").glob("*/train.csv.gz"))
            if not splits:
                missing.append("split/<name>/{train,valid,test}.csv.gz")
            if missing:
                raise DataError(f"{cand}: OGB {name} is incomplete, missing {', '.join(missing)}")
            return cand, splits[0]
    raise DataError(
        f"OGB {name} not found under {root}: expected {root / folder}/raw/{{"
        + ",".join(needed)
        + "}.csv.gz and split/<name>/{train,valid,test}.csv.gz. On a machine with internet, "
        f"download http://snap.stanford.edu/ogb/data/nodeproppred/{name.split('-')[1]}.zip and "
        f"unzip it to {root / folder}."
    )


class OGBNodeTask(NodeTask):
    data_help = "<root>/ogbn_<name>/{raw,split} in OGB's raw csv layout"

    def __init__(
        self,
        name: str,
        metric: str,
        multilabel: bool,
        parts: int,
        defaults: dict,
        inference: dict[str, tuple[int, int]] | None = None,
    ):
        self.name, self.metric, self.multilabel, self.parts = name, metric, multilabel, parts
        self.description = f"OGB {name} node property prediction (official Evaluator)"
        self.defaults = defaults
        self.inference = dict(inference or {})

    def load(self, root: Path) -> GraphData:
        from torch_geometric.data import Data
        from torch_geometric.utils import index_to_mask, scatter, to_undirected

        proteins = self.name == "ogbn-proteins"
        needed = ("edge", "edge-feat" if proteins else "node-feat", "node-label")
        folder, split_dir = find_dataset(Path(root), self.name, needed)
        raw = folder / "raw"
        edges = torch.from_numpy(_csv(raw / "edge.csv.gz").astype(np.int64)).t()  # (2, E)
        labels = torch.from_numpy(_csv(raw / "node-label.csv.gz").astype(np.float32))
        n = labels.shape[0]
        if edges.numel() and int(edges.max()) >= n:
            raise DataError(f"{raw}/edge.csv.gz: node id {int(edges.max())} >= {n} labelled nodes")
        if proteins:
            ef = torch.from_numpy(_csv(raw / "edge-feat.csv.gz").astype(np.float32))
            if ef.shape[0] != edges.shape[1]:
                raise DataError(f"{raw}: {ef.shape[0]} edge-feat rows for {edges.shape[1]} edges")
            both = torch.cat([edges, edges.flip(0)], 1)
            x = scatter(torch.cat([ef, ef]), both[1], dim=0, dim_size=n, reduce="mean")  # (N, 8)
            edge_index = both
            y = labels  # (N, 112) binary
        else:
            x = torch.from_numpy(_csv(raw / "node-feat.csv.gz").astype(np.float32))
            if x.shape[0] != n:
                raise DataError(f"{raw}: {x.shape[0]} node-feat rows for {n} labelled nodes")
            edge_index = to_undirected(edges, num_nodes=n)
            y = labels.view(-1).long()  # (N,) class ids
        masks = {}
        for ours, theirs in (("train", "train"), ("val", "valid"), ("test", "test")):
            idx = torch.from_numpy(
                _csv(split_dir / f"{theirs}.csv.gz").reshape(-1).astype(np.int64)
            )
            masks[ours] = index_to_mask(idx, size=n)
        data = Data(x=x, edge_index=edge_index, y=y)
        if proteins:
            data.edge_attr = torch.cat([ef, ef])  # (E, 8), both directions
        num_classes = int(y.shape[1]) if proteins else int(y.max()) + 1
        return GraphData(
            splits={s: data for s in masks},
            in_channels=int(x.shape[1]),
            num_classes=num_classes,
            classes=[str(i) for i in range(num_classes)],
            info={
                "root": str(root),
                "nodes": n,
                "edges": int(edge_index.shape[1]),
                "split": split_dir.name,
            },
            masks=masks,
        )

    def batches(self, data, split, *, batch_size, generator):
        if split != "train" or self.parts <= 1 or generator is None:
            return super().batches(data, split, batch_size=batch_size, generator=generator)
        g = data.splits[split]
        perm = torch.randperm(g.num_nodes, generator=generator)
        return [
            Batch(induced_subgraph(g, nodes), data.masks[split][nodes])
            for nodes in (c.sort().values for c in perm.chunk(self.parts))
        ]

    def score(self, logits, y) -> float:
        ev = _evaluator(self.name)
        if self.multilabel:
            res = ev.eval({"y_true": y.numpy(), "y_pred": logits.numpy()})
        else:
            pred = logits.argmax(-1, keepdim=True)
            res = ev.eval({"y_true": y.view(-1, 1).numpy(), "y_pred": pred.numpy()})
        return float(res[ev.eval_metric])


_COMMON = {"optimizer": "adam", "scheduler": "none", "batch_size": 1}
register_task(
    OGBNodeTask(
        "ogbn-arxiv", "acc", False, 1,
        {**_COMMON, "model": "resgen28_arxiv", "epochs": 500, "lr": 0.01},
    )
)  # fmt: skip
register_task(
    OGBNodeTask(
        "ogbn-proteins", "rocauc", True, 10,
        {**_COMMON, "model": "resgen112_proteins", "epochs": 1000, "lr": 0.01},
        inference={"val": (1, 5), "test": (10, 3)},
    )
)  # fmt: skip
