"""ogbn-arxiv / ogbn-proteins on small generated data in OGB's raw layout: reading, random node
partitions that cover every training node once, and the CLI end to end with OGB's Evaluator."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from pointseg.cli import main
from pointseg.errors import DataError
from pointseg.runtime import import_ogb

try:  # without ogb's PyPI version check (see pointseg.tasks.base.import_ogb)
    import_ogb()
except ImportError:
    pytest.skip("ogb is not installed", allow_module_level=True)

N = 60


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        for r in np.atleast_2d(rows):
            fh.write(",".join(str(v) for v in np.atleast_1d(r)) + "\n")


def write_ogbn(root, name, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / name.replace("-", "_")
    edges = rng.integers(0, N, (4 * N, 2))
    _write(folder / "raw" / "edge.csv.gz", edges)
    if name == "ogbn-proteins":
        _write(folder / "raw" / "edge-feat.csv.gz", rng.random((len(edges), 8)).round(3))
        labels = (rng.random((N, 112)) > 0.5).astype(int)
        labels[:2] = [[0] * 112, [1] * 112]  # both classes in every split
        labels[20:22], labels[40:42] = labels[:2], labels[:2]
        split = "species"
    else:
        _write(folder / "raw" / "node-feat.csv.gz", rng.normal(size=(N, 8)).round(3))
        labels = rng.integers(0, 5, (N, 1))
        split = "time"
    _write(folder / "raw" / "node-label.csv.gz", labels)
    order = np.arange(N)
    for s, idx in (("train", order[:20]), ("valid", order[20:40]), ("test", order[40:])):
        _write(folder / "split" / split / f"{s}.csv.gz", idx.reshape(-1, 1))
    return root


@pytest.mark.parametrize("name", ["ogbn-arxiv", "ogbn-proteins"])
def test_generated_ogbn_end_to_end(name, tmp_path, capsys):
    root = write_ogbn(tmp_path / "data", name)
    args = [
        "train",
        name,
        "--data",
        str(root),
        "--out",
        str(tmp_path),
        "--run",
        "r",
        "--epochs",
        "2",
        "--threads",
        "1",
        "--no-progress",
        "--no-tensorboard",
        "--set",
        "model.num_layers=3",
        "--set",
        "model.channels=8",
    ]
    assert main(args) == 0
    assert main(["eval", "--checkpoint", str(tmp_path / "r")]) == 0
    m = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert m["task"] == name and m["samples"] == 20 and 0.0 <= m["value"] <= 1.0
    assert m["metric"] == ("rocauc" if name == "ogbn-proteins" else "acc")


def test_proteins_partitions_cover_train_nodes_once(tmp_path):
    from pointseg.tasks import get_task

    task = get_task("ogbn-proteins")
    data = task.load(write_ogbn(tmp_path, "ogbn-proteins"))
    assert data.in_channels == 8 and data.num_classes == 112
    parts = task.batches(data, "train", batch_size=1, generator=torch.Generator().manual_seed(0))
    assert len(parts) == task.parts
    assert sum(int(b.mask.sum()) for b in parts) == 20
    full = data.splits["train"]
    assert sum(b.graph.num_nodes for b in parts) == full.num_nodes
    assert sum(b.graph.edge_index.shape[1] for b in parts) < full.edge_index.shape[1]


def test_missing_ogbn_error(tmp_path):
    from pointseg.tasks import get_task

    with pytest.raises(DataError, match=r"ogbn_arxiv/raw.*nodeproppred/arxiv\.zip"):
        get_task("ogbn-arxiv").load(tmp_path)


# ---------------------------------------------------------------------------- multi-view inference


def _proteins_model(data, **kw):
    from pointseg.models.graph import GraphDeepGCN, GraphModelConfig

    torch.manual_seed(0)
    cfg = dict(
        in_channels=8,
        num_classes=112,
        channels=8,
        num_layers=3,
        block="rev",
        aggr="max",
        norm="layer",
        edge_encoder="linear",
        edge_channels=8,
        dropout=0.1,
    )
    return GraphDeepGCN(GraphModelConfig(**{**cfg, **kw})).eval()


def _part_logits(model, g, nodes):
    """One part's logits, built here with PyG's subgraph (independently of the task's helper)."""
    from torch_geometric.utils import subgraph

    ei, ea = subgraph(nodes, g.edge_index, g.edge_attr, relabel_nodes=True, num_nodes=g.num_nodes)
    return model(g.x[nodes], ei, ea)


def test_multiview_inference_is_deterministic_and_one_view_is_one_partition(tmp_path):
    from pointseg.tasks import get_task

    task = get_task("ogbn-proteins")
    data = task.load(write_ogbn(tmp_path, "ogbn-proteins"))
    g, mask = data.splits["test"], data.masks["test"]
    assert g.edge_attr.shape == (g.edge_index.shape[1], 8)
    model = _proteins_model(data)

    def predict(**kw):
        return task.predict(model, data, "test", batch_size=1, **kw)[0]

    # 1 view of 1 part == the full-graph forward
    with torch.no_grad():
        full = model(g.x, g.edge_index, g.edge_attr)[mask]
    assert torch.equal(predict(views=1, parts=1), full)
    # 1 view of P parts == one seeded random partition, each part run on its induced subgraph
    gen = torch.Generator().manual_seed(5)
    expected = []
    for _ in range(3):
        out = torch.empty(g.num_nodes, 112)
        with torch.no_grad():
            for nodes in torch.randperm(g.num_nodes, generator=gen).chunk(4):
                nodes = nodes.sort().values
                out[nodes] = _part_logits(model, g, nodes)
        expected.append(out)
    one = predict(views=1, parts=4, seed=5)
    torch.testing.assert_close(one, expected[0][mask], rtol=0, atol=1e-6)
    assert not torch.allclose(one, full, atol=1e-3)  # the partition really dropped edges
    # V views == the mean of the V partitions drawn in order from the seed; deterministic
    three = predict(views=3, parts=4, seed=5)
    torch.testing.assert_close(three, torch.stack(expected).mean(0)[mask], rtol=0, atol=1e-6)
    assert torch.equal(three, predict(views=3, parts=4, seed=5))
    assert not torch.equal(three, predict(views=3, parts=4, seed=6))
    # defaults: the task's (test: 10 views of 3 parts, val: 1 view of 5 parts)
    assert task.inference_setting("test") == (10, 3) and task.inference_setting("val") == (1, 5)
    assert torch.equal(predict(), predict(views=10, parts=3, seed=0))


def test_eval_views_parts_seed_flags(tmp_path, capsys):
    root = write_ogbn(tmp_path / "data", "ogbn-proteins")
    args = ["train", "ogbn-proteins", "--data", str(root), "--out", str(tmp_path), "--run", "r"]
    args += ["--epochs", "1", "--threads", "1", "--no-progress", "--no-tensorboard"]
    args += ["--model", "revgnn_deep_proteins", "--lr", "0.001"]
    args += ["--set", "model.num_layers=3", "--set", "model.channels=8"]
    assert main(args) == 0
    results = []
    for flags in (["--views", "4", "--parts", "2", "--seed", "3"],) * 2 + ([],):
        assert main(["eval", "--checkpoint", str(tmp_path / "r"), *flags]) == 0
        results.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert results[0] == results[1]  # deterministic for a seed
    assert (results[0]["views"], results[0]["parts"], results[0]["seed"]) == (4, 2, 3)
    assert (results[2]["views"], results[2]["parts"], results[2]["seed"]) == (10, 3, 0)
    assert results[0]["value"] != results[2]["value"]
