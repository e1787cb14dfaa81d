"""PPI task on a small generated dataset in PyG's PPI file layout: read like PyG's `PPI`, trains end
to end through the CLI, and micro-F1 equals scikit-learn's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from pointseg.cli import main
from pointseg.errors import DataError
from pointseg.tasks.ppi import micro_f1, read_ppi_split

F_IN, LABELS = 50, 121


def write_ppi(root, graphs_per_split=(3, 1, 1), nodes=30, seed=0):
    """PyG's PPI raw layout: <root>/raw/<split>_{graph.json, feats.npy, graph_id.npy, labels.npy}.
    Labels depend on the features and the neighbours' features, so they are learnable."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(F_IN, LABELS))
    raw = root / "raw"
    raw.mkdir(parents=True)
    gid_next = 1
    for split, count in zip(("train", "valid", "test"), graphs_per_split, strict=True):
        feats, labels, gids, links = [], [], [], []
        for _ in range(count):
            base = len(gids)
            x = rng.normal(size=(nodes, F_IN)).astype(np.float32)
            src = rng.integers(0, nodes, 3 * nodes)
            dst = rng.integers(0, nodes, 3 * nodes)
            agg = x.copy()
            np.add.at(agg, dst, x[src])
            np.add.at(agg, src, x[dst])
            labels.append((agg @ w > 0).astype(np.float32))
            feats.append(x)
            gids += [gid_next] * nodes
            links += [
                {"source": int(a) + base, "target": int(b) + base}
                for a, b in zip(src, dst, strict=True)
            ]
            gid_next += 1
        n = len(gids)
        graph = {
            "directed": False,
            "multigraph": False,
            "graph": {},
            "nodes": [{"id": i} for i in range(n)],
            "links": links,
        }
        (raw / f"{split}_graph.json").write_text(json.dumps(graph))
        np.save(raw / f"{split}_feats.npy", np.concatenate(feats))
        np.save(raw / f"{split}_labels.npy", np.concatenate(labels))
        np.save(raw / f"{split}_graph_id.npy", np.asarray(gids, dtype=np.int64))
    return root


def test_reader_equals_pyg_ppi(tmp_path):
    pytest.importorskip("networkx")
    from torch_geometric.datasets import PPI
    from torch_geometric.utils import coalesce

    root = write_ppi(tmp_path / "ppi")
    ours = read_ppi_split(root / "raw", "train")
    ref = PPI(str(root), split="train")  # processes (writes) inside tmp_path only
    assert len(ours) == len(ref) == 3
    for a, b in zip(ours, ref, strict=True):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
        assert torch.equal(coalesce(a.edge_index), coalesce(b.edge_index))


def test_micro_f1_equals_sklearn():
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        logits = torch.randn(40, 7, generator=gen)
        y = (torch.rand(40, 7, generator=gen) > 0.6).float()
        assert micro_f1(logits, y) == pytest.approx(
            f1_score(y.numpy(), (logits > 0).numpy(), average="micro", zero_division=0), abs=1e-12
        )


def test_ppi_end_to_end_and_f1_matches_sklearn(tmp_path, capsys):
    root = write_ppi(tmp_path / "ppi")
    args = [
        "train",
        "ppi",
        "--data",
        str(root),
        "--out",
        str(tmp_path),
        "--run",
        "p",
        "--epochs",
        "3",
        "--threads",
        "1",
        "--no-progress",
        "--no-tensorboard",
        "--set",
        "model.num_layers=3",
        "--set",
        "model.channels=32",
    ]
    assert main(args) == 0
    assert main(["eval", "--checkpoint", str(tmp_path / "p")]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["metric"] == "micro_f1" and metrics["samples"] == 30

    from pointseg.checkpoint import model_from_checkpoint
    from pointseg.tasks import get_task

    task = get_task("ppi")
    data = task.load(root)
    model, _ = model_from_checkpoint(tmp_path / "p" / "best.pt")
    with torch.no_grad():
        g = data.splits["test"][0]
        pred = (task.forward(model, g) > 0).numpy()
    expected = f1_score(g.y.numpy(), pred, average="micro", zero_division=0)
    assert metrics["value"] == pytest.approx(expected, abs=1e-9)
    assert metrics["value"] > 0.5  # labels are learnable: well above an empty prediction (0)


def test_missing_files_error(tmp_path):
    from pointseg.tasks.ppi import find_raw

    with pytest.raises(DataError, match=r"raw/\{train,valid,test\}_"):
        find_raw(tmp_path)
    root = write_ppi(tmp_path / "p")
    (root / "raw" / "test_labels.npy").unlink()
    with pytest.raises(DataError, match="missing test_labels.npy"):
        find_raw(root)
