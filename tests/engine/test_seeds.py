"""`pointseg train <task> --seeds N` / `pointseg eval --checkpoint <parent>` (pointseg.engine.seeds):
one run folder per seed, a summary equal to the per-seed results (and each seed equal to a single
run with that --seed), resume after an interruption, and clear errors on bad input."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from pointseg.cli import main
from pointseg.engine import seeds as S
from pointseg.errors import ConfigError
from pointseg.tasks import TASK_REGISTRY, register_task
from pointseg.tasks.graphs import GraphData, NodeTask


class ToyNodes(NodeTask):
    """A 60-node, 3-class graph (features = noisy class one-hot, edges mostly inside a class)."""

    metric = "accuracy"
    data_help = "any folder (the graph is generated)"
    defaults = {
        "model": "resgen_planetoid",
        "epochs": 3,
        "batch_size": 1,
        "optimizer": "adam",
        "lr": 0.01,
        "scheduler": "none",
    }

    def __init__(self, name: str, test_nodes: int = 24) -> None:
        self.name, self.test_nodes = name, test_nodes
        self.description = f"{name}: generated test graph"

    def resolve_root(self, data):
        return Path(data or ".")

    def load(self, root: Path) -> GraphData:
        from torch_geometric.data import Data

        gen = torch.Generator().manual_seed(0)
        n, k = 60, 3
        y = torch.arange(n) % k
        x = torch.nn.functional.one_hot(y, k).float().repeat(1, 3) + torch.randn(
            n, 9, generator=gen
        )
        src = torch.randint(0, n, (240,), generator=gen)
        dst = (src + k * torch.randint(1, n // k, (240,), generator=gen)) % n  # same class
        ei = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
        data = Data(x=x, edge_index=ei, y=y)
        idx = torch.arange(n)
        masks = {"train": idx < 18, "val": (idx >= 18) & (idx < 36)}
        masks["test"] = (idx >= 36) & (idx < 36 + self.test_nodes)
        return GraphData(
            splits={s: data for s in ("train", "val", "test")},
            in_channels=9,
            num_classes=k,
            classes=["a", "b", "c"],
            info={"root": str(root)},
            masks=masks,
        )


@pytest.fixture
def toy_tasks():
    names = {"toy-seeds": 24, "toy-other": 24, "toy-notest": 0}
    for name, test in names.items():
        register_task(ToyNodes(name, test))
    yield names
    for name in names:
        TASK_REGISTRY.pop(name, None)


def _argv(task, out, *extra):
    return ["train", task, "--data", str(out), "--out", str(out), "--threads", "1",
            "--set", "model.channels=8", "--set", "model.num_layers=2",
            "--no-progress", "--no-tensorboard", *extra]  # fmt: skip


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_parse_seeds():
    assert S.parse_seeds("3") == [0, 1, 2]
    assert S.parse_seeds("2", base=10) == [10, 11]
    assert S.parse_seeds("4,0,9") == [4, 0, 9]
    assert S.parse_seeds("7,") == [7]
    with pytest.raises(ConfigError, match="seed 1 is repeated"):
        S.parse_seeds("0,1,2,1")
    for bad in ("0", "-2", "x", "1,a", ","):
        with pytest.raises(ConfigError, match="--seeds"):
            S.parse_seeds(bad)


def test_seeds_train_folders_and_summary_equal_per_seed_results(toy_tasks, tmp_path, capsys):
    assert main(_argv("toy-seeds", tmp_path, "--seeds", "3")) == 0
    out = capsys.readouterr().out
    parent = tmp_path / "toy-seeds_resgen_planetoid_seeds"
    assert sorted(p.name for p in parent.iterdir() if p.is_dir()) == ["seed0", "seed1", "seed2"]
    per_seed = [
        json.loads((parent / f"seed{s}" / "eval_test" / "metrics.json").read_text())["value"]
        for s in range(3)
    ]
    summary = json.loads((parent / "summary.json").read_text())
    assert [r["test_accuracy"] for r in summary["per_seed"]] == per_seed
    assert summary["value"] == pytest.approx(statistics.fmean(per_seed), abs=1e-12)
    assert summary["std"] == pytest.approx(statistics.stdev(per_seed), abs=1e-12)
    for r in summary["per_seed"]:  # best validation epoch and value from the seed's best.pt
        meta = torch.load(Path(r["run"]) / "best.pt", weights_only=True)["meta"]
        assert (r["best_epoch"], r["val_accuracy"]) == (meta["best_epoch"], meta["best"])
        assert r["epochs"] == 3 and r["wall_s"] > 0
    line = _last_json(out)
    assert line["value"] == summary["value"] and line["std"] == summary["std"]
    assert line["seeds"] == [0, 1, 2] and line["metric"] == "accuracy"
    table = (parent / "summary.md").read_text()
    assert "| mean ± std |" in table and table.count("\n| ") == 5  # header, 3 seeds, mean

    # each seed is exactly the single run with that --seed
    assert main(_argv("toy-seeds", tmp_path, "--seed", "2", "--run", "single")) == 0
    a = torch.load(tmp_path / "single" / "best.pt", weights_only=True)["model"]
    b = torch.load(parent / "seed2" / "best.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # `pointseg eval --checkpoint <parent>` re-scores every seed: the same summary
    (parent / "summary.json").unlink()
    for s in range(3):
        (parent / f"seed{s}" / "eval_test" / "metrics.json").unlink()
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(parent)]) == 0
    again = json.loads((parent / "summary.json").read_text())
    assert again["per_seed"] == summary["per_seed"] and _last_json(capsys.readouterr().out) == line
    for s in range(3):
        assert (parent / f"seed{s}" / "eval_test" / "metrics.json").is_file()


def test_seeds_resume_after_interruption_equals_uninterrupted(
    toy_tasks, tmp_path, monkeypatch, capsys
):
    import pointseg.engine.train as T

    argv = _argv("toy-seeds", tmp_path, "--seeds", "3", "--epochs", "4")
    real_train = T.train

    def interrupted(cfg, **kw):  # seed 1 stops after 2 steps, like SIGINT: last.pt, then raise
        if cfg.seed == 1:
            import dataclasses

            real_train(dataclasses.replace(cfg, max_steps=2), **kw)
            raise T.TrainingInterrupted(2, cfg.run_dir, 1, 2)
        return real_train(cfg, **kw)

    monkeypatch.setattr(T, "train", interrupted)
    assert main(argv) == 130
    parent = tmp_path / "toy-seeds_resgen_planetoid_seeds"
    assert not (parent / "seed2").exists() and not (parent / "summary.json").exists()
    assert torch.load(parent / "seed1" / "last.pt", weights_only=True)["step"] == 2
    seed0 = (parent / "seed0" / "last.pt").stat().st_mtime_ns
    monkeypatch.setattr(T, "train", real_train)
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "seed 0 (1/3): finished" in err and "seed 1 (2/3): resuming" in err
    assert (parent / "seed0" / "last.pt").stat().st_mtime_ns == seed0  # not retrained
    resumed = json.loads((parent / "summary.json").read_text())

    ref = tmp_path / "ref"
    assert main([*_argv("toy-seeds", ref, "--seeds", "3", "--epochs", "4")]) == 0
    plain = json.loads((ref / "toy-seeds_resgen_planetoid_seeds" / "summary.json").read_text())
    keys = ("seed", "test_accuracy", "test_loss", "val_accuracy", "best_epoch", "epochs")
    assert [{k: r[k] for k in keys} for r in resumed["per_seed"]] == [
        {k: r[k] for k in keys} for r in plain["per_seed"]
    ]
    for s in range(3):  # exact resume: the same weights as the uninterrupted runs
        ref_ckpt = ref / "toy-seeds_resgen_planetoid_seeds" / f"seed{s}" / "last.pt"
        a = torch.load(parent / f"seed{s}" / "last.pt", weights_only=True)["model"]
        b = torch.load(ref_ckpt, weights_only=True)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_seeds_refuse_incompatible_runs_and_bad_input(toy_tasks, tmp_path, capsys):
    assert main(_argv("toy-seeds", tmp_path, "--seeds", "2", "--run", "p")) == 0
    capsys.readouterr()
    # another task into the same parent
    assert main(_argv("toy-other", tmp_path, "--seeds", "2", "--run", "p")) == 1
    err = capsys.readouterr().err
    assert "holds a run of task 'toy-seeds'" in err and "'toy-other'" in err
    assert not (tmp_path / "p" / "seed2").exists()
    # the same task with another recipe
    assert main(_argv("toy-seeds", tmp_path, "--seeds", "3", "--run", "p", "--lr", "0.5")) == 1
    assert "lr=0.01 there, 0.5 here" in capsys.readouterr().err
    # a seed folder copied in from another task's parent is caught by `pointseg eval` too
    assert main(_argv("toy-other", tmp_path, "--seeds", "1", "--run", "q")) == 0
    (tmp_path / "q" / "seed0").rename(tmp_path / "p" / "seed7")
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(tmp_path / "p")]) == 1
    assert "holds a run of task 'toy-other'" in capsys.readouterr().err
    (tmp_path / "p" / "seed7" / "config.yaml").unlink()  # then its last.pt's config is read
    assert main(_argv("toy-seeds", tmp_path, "--seeds", "2", "--run", "p")) == 1
    assert "seed7 holds a run of task 'toy-other'" in capsys.readouterr().err
    # repeated seeds, a task without a test split, a single run as the parent
    assert main(_argv("toy-seeds", tmp_path, "--seeds", "3,1,3", "--run", "r")) == 1
    assert "seed 3 is repeated" in capsys.readouterr().err
    assert main(_argv("toy-notest", tmp_path, "--seeds", "2", "--run", "s")) == 1
    assert "no test split" in capsys.readouterr().err and not (tmp_path / "s").exists()
    assert main(_argv("toy-seeds", tmp_path, "--run", "single")) == 0
    assert main(_argv("toy-seeds", tmp_path, "--seeds", "2", "--run", "single")) == 1
    assert "holds a single run" in capsys.readouterr().err


def test_seeds_overwrite_retrains_and_eval_rejects_out(toy_tasks, tmp_path, capsys):
    assert main(_argv("toy-seeds", tmp_path, "--seeds", "1", "--run", "p")) == 0
    first = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert (
        main(
            _argv(
                "toy-seeds", tmp_path, "--seeds", "1", "--run", "p", "--lr", "0.05", "--overwrite"
            )
        )
        == 0
    )
    second = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert first["recipe"]["lr"] == 0.01 and second["recipe"]["lr"] == 0.05
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(tmp_path / "p"), "--out", str(tmp_path / "x")]) == 1
    assert "--out does not apply" in capsys.readouterr().err
