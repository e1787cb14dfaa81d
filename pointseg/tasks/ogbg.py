"""OGB molecule property prediction (`ogbg-mol*`: molhiv, molbbbp, molbace, molesol, …).

Read offline from OGB's raw on-disk layout, ``<root>/ogbg_<name>/`` (``<root>`` may also be that
folder itself)::

    raw/{node-feat,edge,edge-feat,num-node-list,num-edge-list,graph-label}.csv.gz
    split/scaffold/{train,valid,test}.csv.gz

with our own pandas CSV reader, not `ogb`'s dataset classes: in ogb 1.3.6 those stop at an
interactive prompt when the folder lacks ``RELEASE_v*.txt``, write ``processed/`` next to the raw
files, and load them with a `torch.load` that torch >= 2.6 refuses. Nothing is written, nothing
is unpickled, nothing is downloaded. As OGB does for these datasets, every bond becomes two
directed edges (same features both ways). Node and edge features are OGB's integer codes (9 atom
and 3 bond features), embedded by `ogb`'s AtomEncoder / BondEncoder in the model.

The metric is the one OGB's official `Evaluator` names for the dataset (ROC-AUC, AP or RMSE) and
is computed by that Evaluator. RMSE is lower-is-better, so the engine's "higher is better"
score for regression sets is the negative RMSE (reported as metric "-rmse").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pointseg.errors import DataError
from pointseg.recipes import OGBG_MOL
from pointseg.runtime import import_ogb
from pointseg.tasks import register_task
from pointseg.tasks.graphs import GraphData, GraphLevelTask

# OGB's molecule datasets (ogb/graphproppred/master.csv)
MOL_DATASETS = (
    "molbace",
    "molbbbp",
    "molclintox",
    "molmuv",
    "molpcba",
    "molsider",
    "moltox21",
    "moltoxcast",
    "molhiv",
    "molesol",
    "molfreesolv",
    "mollipo",
)
RAW_FILES = ("node-feat", "edge", "edge-feat", "num-node-list", "num-edge-list", "graph-label")


def _evaluator(name: str):
    try:
        Evaluator = import_ogb("ogb.graphproppred").Evaluator
    except ImportError as exc:
        raise DataError(
            f"{name} needs the `ogb` package: pip install 'ogb==1.3.6' ({exc})"
        ) from None
    return Evaluator(name)


def _csv(path: Path) -> np.ndarray:
    import pandas as pd

    if not path.is_file():
        raise DataError(f"missing {path}")
    try:
        return pd.read_csv(path, header=None).values
    except Exception as exc:  # noqa: BLE001 - any parse failure is a user-file problem
        raise DataError(f"{path}: not a readable OGB csv ({type(exc).__name__}: {exc})") from None


def find_dataset(root: Path, name: str) -> Path:
    folder = name.replace("-", "_")  # ogbg-molbbbp -> ogbg_molbbbp
    for cand in (root / folder, root):
        if (cand / "raw" / "edge.csv.gz").is_file():
            missing = [
                f"raw/{f}.csv.gz" for f in RAW_FILES if not (cand / "raw" / f"{f}.csv.gz").is_file()
            ]
            missing += [
                f"split/scaffold/{s}.csv.gz"
                for s in ("train", "valid", "test")
                if not (cand / "split" / "scaffold" / f"{s}.csv.gz").is_file()
            ]
            if missing:
                raise DataError(f"{cand}: OGB {name} is incomplete, missing {', '.join(missing)}")
            return cand
    raise DataError(
        f"OGB {name} not found under {root}: expected {root / folder}/raw/{{"
        + ",".join(RAW_FILES)
        + "}.csv.gz and split/scaffold/{train,valid,test}.csv.gz. On a machine with internet, "
        f"download http://snap.stanford.edu/ogb/data/graphproppred/csv_mol_download/{name.split('-')[1]}.zip "
        f"and unzip it to {root / folder}."
    )


def read_ogbg(root: str | Path, name: str) -> tuple[list, dict[str, list[int]]]:
    """(list of PyG `Data` graphs, {"train"|"val"|"test": graph indices}) of OGB dataset `name`."""
    from torch_geometric.data import Data

    folder = find_dataset(Path(root), name)
    raw = folder / "raw"
    node_feat = _csv(raw / "node-feat.csv.gz").astype(np.int64)
    edges = _csv(raw / "edge.csv.gz").astype(np.int64)
    edge_feat = _csv(raw / "edge-feat.csv.gz").astype(np.int64)
    n_nodes = _csv(raw / "num-node-list.csv.gz").reshape(-1).astype(np.int64)
    n_edges = _csv(raw / "num-edge-list.csv.gz").reshape(-1).astype(np.int64)
    labels = _csv(raw / "graph-label.csv.gz").astype(np.float32)  # NaN = unlabelled task
    if len(n_nodes) != len(n_edges) or len(labels) != len(n_nodes):
        raise DataError(
            f"{raw}: {len(n_nodes)} node counts, {len(n_edges)} edge counts and {len(labels)} "
            "label rows must agree (one per graph)"
        )
    if node_feat.shape[0] != n_nodes.sum() or edges.shape[0] != n_edges.sum():
        raise DataError(
            f"{raw}: node-feat has {node_feat.shape[0]} rows for {n_nodes.sum()} nodes and edge has "
            f"{edges.shape[0]} rows for {n_edges.sum()} edges"
        )
    graphs = []
    n0 = e0 = 0
    for n, e, y in zip(n_nodes.tolist(), n_edges.tolist(), labels, strict=True):
        ei = torch.from_numpy(edges[e0 : e0 + e].T.copy())  # (2, e), node ids local to the graph
        ea = torch.from_numpy(edge_feat[e0 : e0 + e])
        graphs.append(
            Data(
                x=torch.from_numpy(node_feat[n0 : n0 + n]),
                edge_index=torch.cat([ei, ei.flip(0)], 1),  # both directions, as OGB does
                edge_attr=torch.cat([ea, ea], 0),
                y=torch.from_numpy(y).view(1, -1),
                num_nodes=n,
            )
        )
        n0, e0 = n0 + n, e0 + e
    split = {}
    for ours, theirs in (("train", "train"), ("val", "valid"), ("test", "test")):
        idx = _csv(folder / "split" / "scaffold" / f"{theirs}.csv.gz").reshape(-1).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(graphs)):
            raise DataError(f"{folder}/split/scaffold/{theirs}.csv.gz: graph index out of range")
        split[ours] = idx.tolist()
    return graphs, split


class OGBMolTask(GraphLevelTask):
    data_help = "<root>/ogbg_<name>/{raw,split/scaffold} in OGB's raw csv layout"

    def __init__(self, short: str) -> None:
        self.name = f"ogbg-{short}"
        self.description = f"OGB {self.name} molecular property prediction (official Evaluator)"
        self.defaults = dict(OGBG_MOL)  # DeeperGCN's recipe: pointseg/recipes.py
        self._meta: dict | None = None

    def _info(self) -> dict:
        if self._meta is None:
            ev = _evaluator(self.name)
            self._meta = {"eval_metric": ev.eval_metric, "num_tasks": ev.num_tasks}
        return self._meta

    @property
    def regression(self) -> bool:
        return self._info()["eval_metric"] == "rmse"

    @property
    def metric(self) -> str:  # type: ignore[override]
        m = self._info()["eval_metric"]
        return "-rmse" if m == "rmse" else m

    @property
    def multilabel(self) -> bool:  # type: ignore[override]
        return not self.regression

    def load(self, root: Path) -> GraphData:
        graphs, split = read_ogbg(root, self.name)
        num_tasks = int(graphs[0].y.shape[1])
        if num_tasks != self._info()["num_tasks"]:
            raise DataError(
                f"{root}: {self.name} labels have {num_tasks} columns, OGB says {self._info()['num_tasks']}"
            )
        return GraphData(
            splits={s: [graphs[i] for i in idx] for s, idx in split.items()},
            in_channels=9,
            num_classes=num_tasks,
            classes=[f"task{i}" for i in range(num_tasks)],
            info={
                "root": str(root),
                "graphs": len(graphs),
                **{s: len(i) for s, i in split.items()},
            },
        )

    def loss(self, logits, y):
        if self.regression:
            y = y.to(logits.dtype).reshape(logits.shape)
            known = ~torch.isnan(y)
            return torch.nn.functional.mse_loss(logits[known], y[known])
        return super().loss(logits, y)

    def correct(self, logits, y):
        if self.regression:  # no accuracy (NaN in the log); the count weights the loss
            known = ~torch.isnan(y.to(logits.dtype).reshape(logits.shape))
            return float("nan"), float(known.sum())
        return super().correct(logits, y)

    def score(self, logits, y) -> float:
        ev = _evaluator(self.name)
        res = ev.eval({"y_true": y.reshape(logits.shape).numpy(), "y_pred": logits.numpy()})
        value = float(res[ev.eval_metric])
        return -value if self.regression else value


for _short in MOL_DATASETS:
    register_task(OGBMolTask(_short))
