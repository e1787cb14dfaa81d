"""Planetoid citation graphs (Cora, CiteSeer, PubMed; Yang et al., 2016), public split, accuracy.

Read from PyG's on-disk layout, ``<root>/<Name>/raw/ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}``
(the files of github.com/kimiyoung/planetoid and tkipf/gcn). Nothing is written next to them.

The raw files are Python 2 pickles. They are read with a *restricted* unpickler that can only
build the handful of types these files contain (numpy arrays and dtypes, scipy CSR matrices, a
``defaultdict`` of lists, plain Python values); anything else in a file, e.g. a pickle crafted to
run code, is refused with an error naming the file and the type. The result is then assembled
exactly as PyG's ``read_planetoid_data`` does (tested equal on the real Cora / CiteSeer files):
train = the first ``len(y)`` nodes (20 per class), val = the next 500, test = ``test.index``
(1,000 nodes); CiteSeer's isolated test nodes get zero features; self loops are removed and edges
coalesced. Node features are row-normalised (each row sums to 1), as in GCN, and kept as a sparse
COO tensor (Cora: 1.3% non-zero), which the model's linear encoder multiplies sparsely.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import numpy as np
import torch

from pointseg.errors import DataError
from pointseg.recipes import PLANETOID
from pointseg.tasks import register_task
from pointseg.tasks.graphs import GraphData, NodeTask

NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def _allowed() -> dict[tuple[str, str], object]:
    import scipy.sparse

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    return {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("scipy.sparse.csr", "csr_matrix"): scipy.sparse.csr_matrix,
        ("scipy.sparse._csr", "csr_matrix"): scipy.sparse.csr_matrix,
        ("collections", "defaultdict"): collections.defaultdict,
        ("__builtin__", "list"): list,
        ("builtins", "list"): list,
    }


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, fh, path: Path) -> None:
        super().__init__(fh, encoding="latin1")
        self.path = path
        self.allowed = _allowed()

    def find_class(self, module: str, name: str):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.path}: refusing to unpickle {module}.{name}; a Planetoid file holds only "
                f"numpy arrays, scipy CSR matrices and a dict of lists (is this the right file?)"
            ) from None


def read_pickle(path: Path):
    """Unpickle a Planetoid raw file with the restricted unpickler (see the module docstring)."""
    try:
        with open(path, "rb") as fh:
            return _RestrictedUnpickler(io.BufferedReader(fh), path).load()
    except DataError:
        raise
    except Exception as exc:  # truncated / not a pickle
        raise DataError(
            f"{path}: not a readable Planetoid pickle ({type(exc).__name__}: {exc})"
        ) from None


def find_raw(root: Path, name: str) -> Path:
    """``<root>/<Name>/raw`` (also accepted: root = ``<Name>`` or the raw folder itself)."""
    prefix = name.lower()
    for cand in (root / NAMES[prefix] / "raw", root / "raw", root):
        if (cand / f"ind.{prefix}.x").is_file():
            missing = [f for f in FILES if not (cand / f"ind.{prefix}.{f}").is_file()]
            if missing:
                raise DataError(
                    f"{cand}: Planetoid {NAMES[prefix]} is incomplete, missing "
                    + ", ".join(f"ind.{prefix}.{f}" for f in missing)
                )
            return cand
    raise DataError(
        f"Planetoid {NAMES[prefix]} not found under {root}: expected "
        f"{root / NAMES[prefix] / 'raw'}/ind.{prefix}.{{{','.join(FILES)}}}. On a machine with "
        f"internet, fetch them from https://github.com/kimiyoung/planetoid/tree/master/data (or "
        f"tkipf/gcn's gcn/data/) and copy them there."
    )


def _dense(a) -> torch.Tensor:
    a = a.todense() if hasattr(a, "todense") else a
    return torch.from_numpy(np.asarray(a)).to(torch.float)


def read_planetoid(root: str | Path, name: str):
    """The PyG `Data` (x, edge_index, y, train/val/test masks) of Planetoid `name`, read offline."""
    from torch_geometric.data import Data
    from torch_geometric.utils import coalesce, index_to_mask, remove_self_loops

    prefix = name.lower()
    raw = find_raw(Path(root), prefix)
    items = {f: raw / f"ind.{prefix}.{f}" for f in FILES}
    x, tx, allx, y, ty, ally = (_dense(read_pickle(items[f])) for f in FILES[:6])
    graph = read_pickle(items["graph"])
    if not isinstance(graph, dict):
        raise DataError(f"{items['graph']}: expected a dict of adjacency lists")
    try:
        test_index = torch.from_numpy(np.loadtxt(items["test.index"], dtype=np.int64).reshape(-1))
    except ValueError as exc:
        raise DataError(f"{items['test.index']}: expected one integer per line ({exc})") from None
    train_index = torch.arange(y.size(0))
    val_index = torch.arange(y.size(0), y.size(0) + 500)
    sorted_test = test_index.sort()[0]
    if prefix == "citeseer":  # isolated test nodes: zero rows for the missing indices
        span = int(test_index.max() - test_index.min()) + 1
        tx_ext = torch.zeros(span, tx.size(1))
        tx_ext[sorted_test - test_index.min()] = tx
        ty_ext = torch.zeros(span, ty.size(1))
        ty_ext[sorted_test - test_index.min()] = ty
        tx, ty = tx_ext, ty_ext
    feats = torch.cat([allx, tx], 0)
    feats[test_index] = feats[sorted_test]
    labels = torch.cat([ally, ty], 0).max(dim=1)[1]
    labels[test_index] = labels[sorted_test]
    n = labels.size(0)
    rows = [int(k) for k, v in graph.items() for _ in v]
    cols = [int(j) for v in graph.values() for j in v]
    edge_index = torch.tensor([rows, cols], dtype=torch.long)
    edge_index, _ = remove_self_loops(edge_index)
    edge_index = coalesce(edge_index, num_nodes=n, sort_by_row=False)
    data = Data(x=feats, edge_index=edge_index, y=labels)
    data.train_mask = index_to_mask(train_index, size=n)
    data.val_mask = index_to_mask(val_index, size=n)
    data.test_mask = index_to_mask(test_index, size=n)
    return data


class PlanetoidTask(NodeTask):
    metric = "accuracy"
    data_help = "<root>/<Name>/raw/ind.<name>.* of the Planetoid citation graphs"

    def __init__(self, name: str) -> None:
        self.name = name
        self.description = f"{NAMES[name]} citation graph, public split, node accuracy"
        self.defaults = dict(PLANETOID[name])  # the recipe: pointseg/recipes.py

    def load(self, root: Path) -> GraphData:
        data = read_planetoid(root, self.name)
        deg = data.x.sum(1, keepdim=True)
        # row-normalised, stored sparse (~1% non-zero; the model's encoder multiplies sparsely)
        data.x = (data.x / deg.clamp(min=1e-12)).to_sparse().coalesce()
        num_classes = int(data.y.max()) + 1
        info = {
            "root": str(root),
            "name": NAMES[self.name],
            "nodes": int(data.num_nodes),
            "edges": int(data.edge_index.shape[1]),
            "features": int(data.x.shape[1]),
        }
        return GraphData(
            splits={s: data for s in ("train", "val", "test")},
            in_channels=int(data.x.shape[1]),
            num_classes=num_classes,
            classes=[str(c) for c in range(num_classes)],
            info=info,
            masks={"train": data.train_mask, "val": data.val_mask, "test": data.test_mask},
        )


for _name in NAMES:
    register_task(PlanetoidTask(_name))
