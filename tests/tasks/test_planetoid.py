"""Planetoid task: offline reader (equal to PyG's, restricted unpickling, clear errors) and the
real CLI on Cora: `pointseg train cora` reaches test accuracy >= 0.78, `pointseg eval` prints
the metrics JSON last, resume is exact, task / checkpoint mismatches are refused."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch

from pointseg.cli import main
from pointseg.errors import ConfigError, DataError
from pointseg.tasks.planetoid import read_pickle, read_planetoid


@pytest.fixture(scope="module")
def planetoid(shared_data):
    root = shared_data / "planetoid"
    if not (root / "Cora" / "raw" / "ind.cora.x").is_file():
        pytest.skip(f"Planetoid Cora not found under {root}")
    return root


@pytest.mark.parametrize("name", ["Cora", "CiteSeer"])
def test_reader_equals_pyg(planetoid, name, tmp_path):
    from torch_geometric.io import read_planetoid_data

    ours = read_planetoid(planetoid, name)
    # PyG unpickles without restrictions: fine for these known files, on a copy.
    shutil.copytree(planetoid / name / "raw", tmp_path / "raw")
    ref = read_planetoid_data(str(tmp_path / "raw"), name)
    for key in ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(ours[key], ref[key]), key
    assert int(ours.train_mask.sum()) == 20 * (int(ours.y.max()) + 1)
    assert int(ours.val_mask.sum()) == 500 and int(ours.test_mask.sum()) == 1000


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_restricted_unpickler_refuses_other_types(tmp_path):
    path = tmp_path / "ind.cora.x"
    path.write_bytes(pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(
        DataError, match=r"ind\.cora\.x: refusing to unpickle (__builtin__|builtins)\.print"
    ):
        read_pickle(path)


def test_missing_and_incomplete_layout_errors(planetoid, tmp_path):
    with pytest.raises(DataError, match=r"Cora/raw/ind\.cora\..*kimiyoung/planetoid"):
        read_planetoid(tmp_path, "cora")
    raw = tmp_path / "Cora" / "raw"
    raw.mkdir(parents=True)
    shutil.copy(planetoid / "Cora" / "raw" / "ind.cora.x", raw)
    with pytest.raises(DataError, match=r"incomplete, missing ind\.cora\.tx"):
        read_planetoid(tmp_path, "cora")


def _train(args, capsys):
    assert main(["train", "cora", "--threads", "1", "--no-progress", *args]) == 0
    return capsys.readouterr()


def test_cora_res_plus_gen_reaches_078_and_eval_prints_json(planetoid, tmp_path, capsys):
    _train(
        [
            "--data",
            str(planetoid),
            "--out",
            str(tmp_path),
            "--run",
            "r",
            "--eval-every",
            "2",
            "--model",
            "resgen_planetoid",  # res+ GENConv (the recipe is the 2-layer GCN, below)
            "--epochs",
            "60",
            "--weight-decay",
            "1e-3",
            "--weight-decay-scope",
            "all",
            "--no-tensorboard",
        ],
        capsys,
    )
    run = tmp_path / "r"
    for name in ("config.yaml", "last.pt", "best.pt", "log.csv", "steps.csv", "curves.png"):
        assert (run / name).is_file(), name
    assert main(["eval", "--checkpoint", str(run)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    metrics = json.loads(out[-1])
    assert metrics == json.loads((run / "eval_test" / "metrics.json").read_text())
    assert metrics["task"] == "cora" and metrics["split"] == "test"
    assert metrics["metric"] == "accuracy" and metrics["samples"] == 1000
    assert metrics["value"] >= 0.78, metrics


def test_resume_is_exact(planetoid, tmp_path, capsys):
    common = [
        "--data",
        str(planetoid),
        "--out",
        str(tmp_path),
        "--epochs",
        "4",
        "--set",
        "model.num_layers=2",
        "--set",
        "model.channels=16",
        "--no-tensorboard",
    ]
    _train([*common, "--run", "full"], capsys)
    _train([*common, "--run", "part", "--max-steps", "2"], capsys)
    # config.yaml of the run keeps max_steps: lift it when continuing
    _train([*common, "--run", "part", "--resume", "--set", "max_steps=null"], capsys)
    ca = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    cb = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert ca["step"] == cb["step"] == 4 and ca["steps"] == cb["steps"]
    a, b = ca["model"], cb["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_mismatches_are_refused(planetoid, tmp_path, capsys):
    from pointseg.checkpoint import save_checkpoint
    from pointseg.engine.graph import evaluate_graph_checkpoint
    from pointseg.models import create_model, get_config

    cfg = get_config("resgcn28", num_blocks=2, channels=8)
    save_checkpoint(
        tmp_path / "pc.pt",
        model_config=cfg,
        model_state=create_model(cfg).state_dict(),
        meta={"dataset": "s3dis"},
    )
    with pytest.raises(ConfigError, match="point-cloud"):
        evaluate_graph_checkpoint(tmp_path / "pc.pt", data=str(planetoid))
    assert (
        main(
            [
                "train",
                "cora",
                "--data",
                str(planetoid),
                "--out",
                str(tmp_path),
                "--set",
                "model.in_channels=10",
                "--no-progress",
            ]
        )
        == 1
    )
    assert "expects 10 node features but the cora data has 1433" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "cora",
                "--data",
                str(tmp_path / "nowhere"),
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 1
    )
    assert "Planetoid Cora not found" in capsys.readouterr().err


def test_cora_recipe_is_gcn_with_first_layer_decay_and_reaches_080(planetoid, tmp_path, capsys):
    """`pointseg train cora` = Kipf & Welling's GCN recipe (10 seeds measured 0.8164 ± 0.0098 at
    200 epochs, docs/graphs.md); 100 epochs here to keep the test short."""
    _train(["--data", str(planetoid), "--out", str(tmp_path), "--run", "gcn", "--epochs", "100",
            "--no-tensorboard"], capsys)  # fmt: skip
    ckpt = torch.load(tmp_path / "gcn" / "last.pt", weights_only=True)
    assert ckpt["model_config"]["node_encoder"] == "none" and ckpt["model_config"]["head"] == "conv"
    groups = ckpt["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]
    assert [len(g["params"]) for g in groups] == [2, 2]  # conv1 (W, b) decayed; conv2 not
    assert main(["eval", "--checkpoint", str(tmp_path / "gcn")]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["value"] >= 0.80, metrics
