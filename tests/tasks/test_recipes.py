"""Per-dataset recipes (pointseg/recipes.py): the defaults each task trains with, `--quick`
layered under the user's flags, and the molecule recipe + OGB's GCN baseline on a tiny budget
through `--seeds` (regression scored as RMSE, as OGB does)."""

from __future__ import annotations

import json
import statistics

import pytest

from pointseg.cli import build_parser, main
from pointseg.commands.train import config_from_args
from pointseg.errors import ConfigError
from pointseg.models.registry import get_graph_config
from pointseg.recipes import OGBG_MOL, PLANETOID, QUICK
from pointseg.runtime import import_ogb


def _cfg(*argv):
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_task_defaults_are_the_recipes():
    for task in ("cora", "citeseer", "pubmed"):
        cfg = _cfg(task)
        for key, value in PLANETOID[task].items():
            assert getattr(cfg, key) == value, (task, key)
    cfg = _cfg("ogbg-molbace")
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.lr) == ("resgen7_mol", 300, 32, 0.01)
    assert OGBG_MOL["weight_decay"] == 0.0
    m = get_graph_config("resgen7_mol")  # DeeperGCN's ogbg_mol command
    assert (m.block, m.conv, m.num_layers, m.channels, m.aggr, m.learn_t) == (
        "res+", "gen", 7, 256, "softmax", True
    )  # fmt: skip
    assert (m.norm, m.dropout, m.edge_encoder, m.pooling) == ("batch", 0.5, "bond", "mean")


def test_quick_sits_below_flags_and_sets():
    cfg = _cfg("ogbg-molfreesolv", "--quick")
    assert (cfg.model, cfg.epochs, cfg.lr) == (
        QUICK["ogbg"]["model"], QUICK["ogbg"]["epochs"], QUICK["ogbg"]["lr"]
    )  # fmt: skip
    cfg = _cfg("ogbg-molfreesolv", "--quick", "--epochs", "1", "--set", "model=gcn5_ogb")
    assert (cfg.model, cfg.epochs) == ("gcn5_ogb", 1)
    assert _cfg("cora", "--quick").epochs == QUICK["planetoid"]["epochs"]
    assert _cfg("cora", "--quick", "--set", "epochs=7").epochs == 7
    with pytest.raises(ConfigError, match="no --quick variant"):
        _cfg("ppi", "--quick")


@pytest.fixture(scope="module")
def ogb_root(shared_data):
    try:  # without ogb's PyPI version check (see pointseg.runtime.import_ogb)
        import_ogb()
    except ImportError:
        pytest.skip("ogb is not installed")
    root = shared_data / "ogb"
    if not (root / "ogbg_molfreesolv" / "raw" / "edge.csv.gz").is_file():
        pytest.skip(f"ogbg_molfreesolv not found under {root}")
    return root


def test_molecule_recipe_and_gcn_baseline_quick_seeds_report_rmse(ogb_root, tmp_path, capsys):
    common = ["--data", str(ogb_root), "--out", str(tmp_path), "--quick", "--epochs", "1",
              "--threads", "1", "--no-progress", "--no-tensorboard", "--seeds", "2",
              "--set", "model.channels=16"]  # fmt: skip
    for run, model in (("deeper", []), ("gcn", ["--set", "model=gcn5_ogb"])):
        assert main(["train", "ogbg-molfreesolv", *common, "--run", run, *model]) == 0
        line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        summary = json.loads((tmp_path / run / "summary.json").read_text())
        assert line["metric"] == summary["metric"] == "rmse" and not summary["higher_is_better"]
        rmse = []
        for s in (0, 1):  # pointseg eval keeps the engine's "higher is better" -rmse
            m = json.loads((tmp_path / run / f"seed{s}" / "eval_test" / "metrics.json").read_text())
            assert m["metric"] == "-rmse" and m["value"] < 0
            rmse.append(-m["value"])
        assert [r["test_rmse"] for r in summary["per_seed"]] == rmse
        assert line["value"] == pytest.approx(statistics.fmean(rmse), abs=1e-12)
        assert all(r["val_rmse"] > 0 for r in summary["per_seed"])
    assert json.loads((tmp_path / "gcn" / "summary.json").read_text())["model"] == "gcn5_ogb"
    assert json.loads((tmp_path / "deeper" / "summary.json").read_text())["model"] == "resgen_mol"


def test_graph_batches_skip_a_lone_last_graph_and_regression_logs_its_loss(ogb_root, tmp_path):
    """molfreesolv has 513 training graphs: batches of 32 leave one graph, which OGB's and
    DeeperGCN's loops skip (a one-atom molecule alone fails BatchNorm); the regression loss is
    logged (it used to be weighted by the accuracy count, 0 for regression)."""
    import csv

    from pointseg.engine.train import resolve_config
    from pointseg.tasks import get_task

    task = get_task("ogbg-molfreesolv")
    data = task.load(ogb_root)
    assert data.num_samples("train") == 513
    for bs, steps in ((32, 16), (512, 1), (100, 6), (513, 1)):
        cfg = resolve_config("ogbg-molfreesolv", flags={"data": str(ogb_root), "batch_size": bs})
        n, it = task.train_batches(cfg, data, None, epoch=0, start=0)
        batches = list(it)
        assert n == len(batches) == task.steps_per_epoch(cfg, data, None) == steps, bs
        assert all(b.graph.num_graphs >= 2 for b in batches)
        left_out = 1 if 513 % bs == 1 else 0
        assert sum(b.graph.num_graphs for b in batches) == 513 - left_out
    assert main(["train", "ogbg-molfreesolv", "--data", str(ogb_root), "--out", str(tmp_path),
                 "--run", "r", "--quick", "--epochs", "1", "--threads", "1", "--no-progress",
                 "--no-tensorboard", "--set", "model.channels=16"]) == 0  # fmt: skip
    row = next(csv.DictReader((tmp_path / "r" / "log.csv").open()))
    assert float(row["train_loss"]) > 0 and row["train_acc"] == ""  # NaN is written empty
