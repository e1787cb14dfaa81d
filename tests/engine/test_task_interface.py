"""The one Task interface and the one Trainer (issue 17): a task defined in a test file trains,
resumes exactly and evaluates through the same loop as S3DIS; settings and eval flags a task does
not use are errors; the bugs the old duplicated loops hid stay fixed; checkpoints written in the
previous layout still load and evaluate."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pointseg.cli import main
from pointseg.engine import train as T
from pointseg.errors import ConfigError, DataError

pytest.importorskip("torch_geometric")


# ------------------------------------------------------------------ a new task in one file
from pointseg.tasks import TASK_REGISTRY, register_task  # noqa: E402
from pointseg.tasks.graphs import GraphData, GraphLevelTask, NodeTask  # noqa: E402


def _graph(n: int, gen: torch.Generator, label: int | None = None):
    from torch_geometric.data import Data

    x = torch.randn(n, 4, generator=gen)
    src = torch.arange(n)
    ring = torch.stack([torch.cat([src, (src + 1) % n]), torch.cat([(src + 1) % n, src])])
    y = torch.tensor([int(x[:, 0].mean() > 0)]) if label is None else label
    return Data(x=x, edge_index=ring, y=y)


class RingsTask(GraphLevelTask):
    """Graph classification of random rings: is the mean of feature 0 positive?"""

    name = "test-rings"
    metric = "accuracy"
    description = "test task: classify random rings"
    data_help = "any folder (the graphs are generated)"
    defaults = {"model": "resgen_planetoid", "epochs": 2, "batch_size": 4, "scheduler": "none"}

    def load(self, root: Path) -> GraphData:
        gen = torch.Generator().manual_seed(0)
        graphs = [_graph(int(torch.randint(5, 9, (1,), generator=gen)), gen) for _ in range(24)]
        splits = {"train": graphs[:16], "val": graphs[16:20], "test": graphs[20:]}
        return GraphData(splits, 4, 2, ["neg", "pos"], {"root": str(root)})


class DotsTask(NodeTask):
    """Node classification on one random ring: the sign of feature 0."""

    name = "test-dots"
    description = "test task: node labels of one ring"
    data_help = "any folder"
    defaults = {"model": "resgen_planetoid", "epochs": 2, "batch_size": 1, "scheduler": "none"}

    def load(self, root: Path) -> GraphData:
        gen = torch.Generator().manual_seed(1)
        g = _graph(30, gen)
        g.y = (g.x[:, 0] > 0).long()
        idx = torch.arange(30)
        masks = {"train": idx < 20, "val": (idx >= 20) & (idx < 25), "test": idx >= 25}
        return GraphData({s: g for s in masks}, 4, 2, ["neg", "pos"], {"root": str(root)}, masks)


@pytest.fixture(scope="module", autouse=True)
def test_tasks():
    from pointseg.tasks import task_names

    task_names()  # load the real tasks first
    added = [register_task(RingsTask()), register_task(DotsTask())]
    yield
    for t in added:
        TASK_REGISTRY.pop(t.name, None)


def graph_cfg(out: Path, name: str = "test-rings", **kw) -> T.TrainConfig:
    sets = {"model_args": {"channels": 8, "num_layers": 2, "dropout": 0.1}}
    flags = dict(data=str(out), out_dir=str(out), run="r", seed=2, threads=1, tensorboard=False,
                 progress=False, **kw)  # fmt: skip
    return T.resolve_config(name, base=sets, flags=flags)


def weights(run: Path) -> dict:
    return torch.load(run / "last.pt", weights_only=True)


def test_new_task_trains_and_resumes_exactly_through_the_one_trainer(tmp_path):
    straight = weights(T.train(graph_cfg(tmp_path / "a", epochs=3)))
    assert straight["step"] == 12  # 16 training graphs, batch 4: 4 steps per epoch
    T.train(graph_cfg(tmp_path / "b", epochs=3, max_steps=6))  # stops mid-epoch 2
    cut = weights(tmp_path / "b" / "r")
    assert (cut["epoch"], cut["batch"], cut["step"]) == (1, 2, 6)
    resumed = weights(T.train(graph_cfg(tmp_path / "b", epochs=3), resume=True))
    for k in straight["model"]:
        assert torch.equal(straight["model"][k], resumed["model"][k]), k
    assert straight["steps"] == resumed["steps"]
    log = (tmp_path / "a" / "r" / "log.csv").read_text().splitlines()
    assert log[0].split(",")[:8] == [
        "epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_metric", "metric"
    ]  # fmt: skip
    assert straight["meta"]["best_metric"] == "val_metric"
    assert straight["meta"]["graph_task"] == "test-rings"


def test_warmup_cosine_on_a_graph_task_steps_per_optimiser_step(tmp_path):
    # Used to crash at start-up (steps_per_epoch read self.data.train), and the graph loop stepped
    # the per-step schedule once per epoch.
    lr, min_lr, warm, epochs = 0.01, 1e-4, 2, 3
    cfg = graph_cfg(tmp_path, epochs=epochs, scheduler="warmup_cosine", warmup_steps=warm, lr=lr,
                    min_lr=min_lr)  # fmt: skip
    run = T.train(cfg)
    rows = (run / "steps.csv").read_text().splitlines()[1:]
    got = [float(r.split(",")[2]) for r in rows]
    total = epochs * 4

    def expected(step: int) -> float:  # LambdaLR after `step` optimiser steps
        if step < warm:
            return lr * (step + 1) / (warm + 1)
        t = min((step - warm) / (total - warm), 1.0)
        return lr * (min_lr / lr + (1 - min_lr / lr) * 0.5 * (1 + math.cos(math.pi * t)))

    assert len(got) == total
    np.testing.assert_allclose(got, [expected(s) for s in range(1, total + 1)], rtol=1e-6)
    assert got[-1] == pytest.approx(min_lr)


def test_deterministic_sets_the_cublas_workspace_for_graph_tasks(tmp_path, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        T.train(graph_cfg(tmp_path, epochs=1, deterministic=True))
        assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == ":4096:8"
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


# ------------------------------------------------------------------ settings a task does not use
def test_settings_a_task_does_not_read_are_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="test_area is not used by test-rings"):
        T.resolve_config("test-rings", sets=["test_area=3"])
    with pytest.raises(ConfigError, match="cache, num_points are not used by test-dots"):
        T.resolve_config("test-dots", flags={"cache": "x", "num_points": 5})
    with pytest.raises(ConfigError, match="data is not used by s3dis"):
        T.resolve_config("s3dis", flags={"data": "somewhere"})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("class_weights: inverse_sqrt\n")
    rc = main(["train", "modelnet40", "--data", str(tmp_path), "--config", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 1 and "class_weights is not used by modelnet40" in err and str(cfg) in err
    rc = main(["train", "cora", "--data", str(tmp_path), "--max-train-samples", "3"])
    assert rc == 1 and "max_train_samples is not used by cora" in capsys.readouterr().err
    # The task's own defaults and a resumed run's saved config (every key) are not user settings.
    saved = T.resolve_config("test-rings").to_dict()
    assert T.resolve_config("test-rings", base=saved).test_area == 5


# ------------------------------------------------------------------ pointseg eval dispatch
def test_eval_flags_that_do_not_apply_are_errors(tmp_path, capsys):
    rings = T.train(graph_cfg(tmp_path / "g", epochs=1))
    dots = T.train(graph_cfg(tmp_path / "n", "test-dots", epochs=1))
    # Graph-level tasks batch their evaluation: --batch-size is used, not dropped.
    assert main(["eval", "--checkpoint", str(rings), "--batch-size", "3", "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["task"] == "test-rings" and m["samples"] == 4
    capsys.readouterr()
    # A full-graph node task has no batches at evaluation.
    assert main(["eval", "--checkpoint", str(dots), "--batch-size", "3"]) == 1
    assert "--batch-size does not apply" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(rings), "--votes", "2", "--area", "5"]) == 1
    err = capsys.readouterr().err
    assert "test-rings checkpoint; --area, --votes do not apply" in err and "Traceback" not in err


# ------------------------------------------------------------------ previous checkpoint layout
def old_layout_checkpoint(path: Path, model_config, meta: dict, **extra) -> Path:
    """A checkpoint exactly as the trainer wrote it before the Task interface (format 1): plain
    `torch.save` of the dict, so a change in `save_checkpoint` cannot hide a layout change."""
    from pointseg.models import create_model

    torch.manual_seed(0)
    model = create_model(model_config)
    ckpt = {
        "format": "pointseg",
        "format_version": 1,
        "model_config": model_config.to_dict(),
        "model": model.state_dict(),
        "meta": {
            "pointseg_version": "0.1.0",
            "torch_version": str(torch.__version__),
            "created": "2026-12-01T00:00:00+00:00",
            "epoch": 3,
            "step": 30,
            "best": 0.5,
            "best_epoch": 2,
            "run": "old",
            **meta,
        },
        "epoch": 3,
        "step": 30,
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def _modelnet_h5(root: Path, shapes: int = 6) -> Path:
    h5py = pytest.importorskip("h5py")
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        with h5py.File(root / f"ply_data_{split}0.h5", "w") as f:
            f["data"] = rng.normal(size=(shapes, 2048, 3)).astype(np.float32)
            f["label"] = rng.integers(0, 40, size=(shapes, 1)).astype(np.uint8)
        (root / f"{split}_files.txt").write_text(f"ply_data_{split}0.h5\n")
    return root


def _modelnet_config():
    from pointseg.models import get_config

    return get_config("resgcn4_tiny_modelnet")


def test_moved_modelnet_checkpoint_keeps_its_points_per_shape(tmp_path, capsys):
    # The trainer writes meta.data.num_point; eval used to read num_points, then fall back to 1024.
    from pointseg.data.modelnet import MODELNET40_CLASSES

    root = _modelnet_h5(tmp_path / "mn")
    meta = {"task": "classification", "dataset": "modelnet40", "best_metric": "val_oa",
            "classes": list(MODELNET40_CLASSES),
            "data": {"num_point": 48, "dataset": "modelnet40", "data": str(root), "format": "h5"}}  # fmt: skip
    moved = old_layout_checkpoint(tmp_path / "moved" / "best.pt", _modelnet_config(), meta,
                                  train_config={"dataset": "modelnet40", "num_points": 48})  # fmt: skip
    assert not (moved.parent / "config.yaml").exists()
    assert main(["eval", "--checkpoint", str(moved.parent), "--no-progress"]) == 0
    m = json.loads((moved.parent / "eval_modelnet40" / "metrics.json").read_text())
    assert m["num_points"] == 48 and "checkpoint" in m["num_points_source"]
    assert m["sources"] == {
        "data": "the checkpoint (meta.data.data)",
        "num_points": "the checkpoint (meta.data.num_point)",
    }
    assert m["protocols"]["classification"]["confusion"] and len(m["classes"]) == 40
    assert "48 points per shape from the checkpoint" in capsys.readouterr().out
    # An explicit --num-points wins, and says so.
    assert main(["eval", "--checkpoint", str(moved), "--num-points", "32", "--no-progress"]) == 0
    m = json.loads((moved.parent / "eval_modelnet40" / "metrics.json").read_text())
    assert (m["num_points"], m["num_points_source"]) == (32, "--num-points")


def test_previous_layout_checkpoints_load_and_evaluate(tmp_path):
    """S3DIS (both protocols), graph and resumable checkpoints in the old layout."""
    from pointseg.checkpoint import load_checkpoint
    from pointseg.data.blocks import make_s3dis_blocks
    from pointseg.data.s3dis import CLASSES
    from pointseg.engine.evaluate import evaluate_checkpoint
    from pointseg.models import get_config
    from tests.engine.test_evaluate import _room, _write_cache

    cache = _write_cache(tmp_path / "cache", {(5, "office_1"): _room(5, 600)})
    blocks = tmp_path / "blocks"
    make_s3dis_blocks(cache, blocks, split="test", num_point=64, min_points=30, progress=False)
    meta = {"task": "segmentation", "dataset": "s3dis", "classes": list(CLASSES),
            "best_metric": "val_miou",
            "data": {"dataset": "s3dis", "cache": str(cache), "blocks": str(blocks),
                     "test_area": 5, "train_areas": [1], "val_rooms": [], "num_point": 64}}  # fmt: skip
    ckpt = old_layout_checkpoint(tmp_path / "s3dis" / "best.pt", get_config("resgcn4_tiny"), meta)
    m = evaluate_checkpoint(ckpt, progress=False, save_predictions=False)
    assert set(m["protocols"]) == {"block-sampled", "whole-room"}
    assert m["test_area"] == 5 and m["num_point"] == 64
    assert m["sources"]["test_area"] == "the checkpoint (meta.data.test_area)"
    assert m["sources"]["cache"] == "the checkpoint (meta.data.cache)"
    assert len(m["protocols"]["whole-room"]["rooms"]) == 1

    # A graph checkpoint as GraphTrainer wrote it: evaluates through the task registry.
    run = T.train(graph_cfg(tmp_path / "g", epochs=1))
    new = load_checkpoint(run / "best.pt")
    old_meta = {k: new["meta"][k] for k in ("task", "graph_task", "dataset", "metric", "classes", "data")}  # fmt: skip
    from pointseg.models.graph import GraphModelConfig

    config = GraphModelConfig.from_dict(dict(new["model_config"]))
    old = old_layout_checkpoint(tmp_path / "old_g" / "best.pt", config, {**old_meta, "best_metric": "val_metric"})  # fmt: skip
    g = evaluate_checkpoint(old, out=str(tmp_path / "ge"))
    assert g["task"] == "test-rings" and g["metric"] == "accuracy" and 0 <= g["value"] <= 1


# ------------------------------------------------------------------ silent fallbacks
def test_a_command_module_that_fails_to_import_is_an_error(monkeypatch):
    import pointseg.cli as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "no_such_command"])
    with pytest.raises(ModuleNotFoundError, match="no_such_command"):
        cli.build_parser()


def test_models_table_does_not_hide_errors_as_minus_one(monkeypatch, capsys):
    import pointseg.models.graph as G

    def boom(cfg):
        raise RuntimeError("count failed")

    monkeypatch.setattr(G, "count_parameters", boom)
    with pytest.raises(RuntimeError, match="count failed"):
        main(["models", "resgen*"])


def test_unreadable_room_cache_is_an_error_not_skipped(tmp_path):
    from tests.engine.test_train import make_blocks

    blocks = make_blocks(tmp_path / "blocks")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "index.json").write_text("{not json")
    cfg = T.resolve_config(
        "s3dis",
        flags=dict(
            blocks=str(blocks),
            cache=str(cache),
            test_area=1,
            model="resgcn4_tiny",
            out_dir=str(tmp_path),
            progress=False,
            tensorboard=False,
        ),  # fmt: skip
    )
    with pytest.raises(DataError, match="room cache .* cannot be read"):
        T.train(cfg)


def test_yaml_error_in_a_runs_config_is_an_error(tmp_path, capsys):
    from pointseg.data.modelnet import MODELNET40_CLASSES

    root = _modelnet_h5(tmp_path / "mn")
    meta = {"task": "classification", "dataset": "modelnet40", "classes": list(MODELNET40_CLASSES),
            "data": {"data": str(root)}}  # fmt: skip
    ckpt = old_layout_checkpoint(tmp_path / "run" / "best.pt", _modelnet_config(), meta)
    (tmp_path / "run" / "config.yaml").write_text("epochs: [1, 2\n")
    assert main(["eval", "--checkpoint", str(ckpt), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "config.yaml" in err and "cannot be read" in err and "Traceback" not in err
