"""ogbg-mol*: our raw-csv reader equals ogb's own raw reader, and `pointseg train ogbg-molbbbp`
runs on the real data, scored by ogb's official Evaluator (ROC-AUC above chance)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pointseg.cli import main
from pointseg.errors import DataError
from pointseg.runtime import import_ogb
from pointseg.tasks.ogbg import read_ogbg

try:  # without ogb's PyPI version check (see pointseg.tasks.base.import_ogb)
    import_ogb()
except ImportError:
    pytest.skip("ogb is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def ogb_root(shared_data):
    root = shared_data / "ogb"
    if not (root / "ogbg_molbbbp" / "raw" / "edge.csv.gz").is_file():
        pytest.skip(f"ogbg_molbbbp not found under {root}")
    return root


def test_reader_equals_ogb_raw_reader(ogb_root):
    from ogb.io.read_graph_raw import read_csv_graph_raw

    graphs, split = read_ogbg(ogb_root, "ogbg-molbbbp")
    ref = read_csv_graph_raw(str(ogb_root / "ogbg_molbbbp" / "raw"), add_inverse_edge=True)
    assert len(graphs) == len(ref) == 2039
    assert [len(split[s]) for s in ("train", "val", "test")] == [1631, 204, 204]
    for i in (0, 1, 500, 2038):
        assert np.array_equal(graphs[i].x.numpy(), ref[i]["node_feat"])
        ours = {
            tuple(e) + tuple(f)
            for e, f in zip(
                graphs[i].edge_index.t().tolist(), graphs[i].edge_attr.tolist(), strict=True
            )
        }
        theirs = {
            tuple(e) + tuple(f)
            for e, f in zip(
                ref[i]["edge_index"].T.tolist(), ref[i]["edge_feat"].tolist(), strict=True
            )
        }
        assert ours == theirs and graphs[i].edge_index.shape[1] == ref[i]["edge_index"].shape[1]


def test_missing_dataset_error(tmp_path):
    with pytest.raises(DataError, match=r"ogbg_molhiv/raw.*csv_mol_download/molhiv\.zip"):
        read_ogbg(tmp_path, "ogbg-molhiv")


def test_molbbbp_trains_and_ogb_evaluator_scores_above_chance(ogb_root, tmp_path, capsys):
    args = [
        "train",
        "ogbg-molbbbp",
        "--data",
        str(ogb_root),
        "--out",
        str(tmp_path),
        "--run",
        "m",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--no-progress",
        "--no-tensorboard",
        "--set",
        "model.channels=32",
        "--set",
        "model.num_layers=2",
    ]
    assert main(args) == 0
    assert main(["eval", "--checkpoint", str(tmp_path / "m")]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["metric"] == "rocauc" and metrics["samples"] == 204
    assert metrics["value"] > 0.5, metrics
    # the value is the official Evaluator's on the best checkpoint's test logits
    from ogb.graphproppred import Evaluator

    from pointseg.checkpoint import model_from_checkpoint
    from pointseg.tasks import get_task

    task = get_task("ogbg-molbbbp")
    data = task.load(ogb_root)
    model, _ = model_from_checkpoint(tmp_path / "m" / "best.pt")
    with torch.no_grad():
        b = task.batches(data, "test", batch_size=1000, generator=None)[0].graph
        pred = task.forward(model, b)
    ref = Evaluator("ogbg-molbbbp").eval({"y_true": b.y.numpy(), "y_pred": pred.numpy()})
    assert metrics["value"] == pytest.approx(ref["rocauc"], abs=1e-6)
