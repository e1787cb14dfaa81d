"""Training engine: config layering, exact resume, checkpoints/logs, SIGTERM, CLI errors."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pointseg.cli import main
from pointseg.engine import train as T
from pointseg.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ROOMS = [
    "Area_1_office_1",
    "Area_1_office_2",
    "Area_2_office_1",
    "Area_3_hallway_1",
    "Area_5_office_1",
]


def make_blocks(root: Path, *, points: int = 32, per_room: int = 4, seed: int = 0) -> Path:
    """Tiny learnable S3DIS-format blocks: the class is the height band of channel 2."""
    from pointseg.data.blocks import write_blocks_h5

    rng = np.random.default_rng(seed)
    data, label, names = [], [], []
    for room in ROOMS:
        for _ in range(per_room):
            x = rng.random((points, 9)).astype(np.float32)
            data.append(x)
            label.append((x[:, 2] * 3).astype(np.uint8))  # classes 0..2
            names.append(room)
    out = root / "train"
    out.mkdir(parents=True, exist_ok=True)
    write_blocks_h5(out / "ply_data_all_0.h5", np.stack(data), np.stack(label))
    (out / "room_filelist.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.fixture(scope="module")
def blocks(tmp_path_factory) -> Path:
    return make_blocks(tmp_path_factory.mktemp("blocks"))


@pytest.fixture(scope="module")
def straight(blocks, tmp_path_factory) -> dict:
    """The uninterrupted reference run (2 epochs × 3 steps) that the resume tests must reproduce."""
    return state(T.train(tiny_cfg(blocks, tmp_path_factory.mktemp("straight"))))


def tiny_cfg(blocks: Path, out: Path, **kw) -> T.TrainConfig:
    base = dict(
        dataset="s3dis",
        model="resgcn4_tiny",
        # ε = 0.5 makes stochastic dilation fire often: resume is exact only if RNG states are restored.
        model_args={"epsilon": 0.5},
        blocks=str(blocks),
        out_dir=str(out),
        run="r",
        epochs=2,
        batch_size=4,
        val_fraction=0.25,
        seed=3,
        threads=1,
        tensorboard=False,
        progress=False,
    )
    base.update(kw)
    return T.resolve_config("s3dis", base=base)


def state(run_dir: Path) -> dict:
    return torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ----------------------------------------------------------------------------- configuration


def test_config_layers_defaults_yaml_flags_set(tmp_path):
    cfg = T.resolve_config("s3dis")
    # Paper recipe (DESIGN §3).
    assert (cfg.optimizer, cfg.lr, cfg.scheduler, cfg.step_size, cfg.gamma) == (
        "adam",
        1e-3,
        "step",
        20,
        0.5,
    )
    assert (cfg.epochs, cfg.batch_size, cfg.test_area, cfg.label_smoothing, cfg.augment) == (
        100,
        16,
        5,
        0.0,
        False,
    )
    mn = T.resolve_config("modelnet40")
    assert (mn.optimizer, mn.lr, mn.momentum, mn.scheduler, mn.min_lr) == (
        "sgd",
        0.1,
        0.9,
        "cosine",
        1e-3,
    )
    assert (mn.epochs, mn.label_smoothing, mn.augment, mn.num_points, mn.model) == (
        400,
        0.2,
        True,
        1024,
        "resgcn28_modelnet",
    )

    y = tmp_path / "c.yaml"
    # `1e-3` without a dot is a *string* in YAML 1.1: the loader must coerce it.
    y.write_text("model:\n  name: plaingcn28\n  channels: 32\nlr: 1e-3\nepochs: 7\nbatch_size: 8\n")
    cfg = T.resolve_config(
        "s3dis", config_file=y, flags={"epochs": 3, "lr": None}, sets=["batch_size=4", "model.k=8"]
    )
    assert cfg.model == "plaingcn28"
    assert cfg.model_args == {"channels": 32, "k": 8}
    assert cfg.lr == pytest.approx(1e-3) and isinstance(cfg.lr, float)
    assert cfg.epochs == 3  # flag beats YAML
    assert cfg.batch_size == 4  # --set beats YAML
    # config.yaml round-trips.
    again = T.resolve_config("s3dis", base=yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


def test_unknown_config_key_names_key_and_valid_keys(tmp_path):
    y = tmp_path / "bad.yaml"
    y.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError) as exc:
        T.resolve_config("s3dis", config_file=y)
    msg = str(exc.value)
    assert "learning_rate" in msg and "bad.yaml" in msg and "lr" in msg and "batch_size" in msg
    with pytest.raises(ConfigError, match="lerning"):
        T.resolve_config("s3dis", sets=["lerning=3"])
    with pytest.raises(ConfigError, match="epochs expects int"):
        T.resolve_config("s3dis", sets=["epochs=two"])
    with pytest.raises(ConfigError, match="optimizer"):
        T.resolve_config("s3dis", sets=["optimizer=rmsprop"])
    with pytest.raises(ConfigError, match="key=value"):
        T.parse_set(["epochs"])


def test_best_comparison_direction():
    # Higher validation mIoU / accuracy is better (DESIGN §5: an inverted comparison is a known bug).
    assert T.is_better(0.6, 0.5)
    assert not T.is_better(0.4, 0.5)
    assert not T.is_better(0.5, 0.5)
    assert T.is_better(0.1, None)
    assert not T.is_better(float("nan"), 0.1)


def test_rng_state_is_weights_only_loadable_and_restores_every_stream(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    path = tmp_path / "rng.pt"
    torch.save(T.rng_state(), path)
    expected = (
        torch.rand(5),
        np.random.rand(5),
        np.random.randn(3),
        [random.random() for _ in range(5)],
    )
    T.set_rng_state(torch.load(path, weights_only=True))
    got = (
        torch.rand(5),
        np.random.rand(5),
        np.random.randn(3),
        [random.random() for _ in range(5)],
    )
    assert torch.equal(expected[0], got[0])
    np.testing.assert_array_equal(expected[1], got[1])
    np.testing.assert_array_equal(expected[2], got[2])
    assert expected[3] == got[3]


def test_one_confusion_implementation():
    # Validation metrics come from pointseg.metrics.ConfusionMatrix, not a private copy.
    assert not hasattr(T, "confusion") and not hasattr(T, "confusion_metrics")
    from pointseg.metrics import ConfusionMatrix

    assert T.ConfusionMatrix is ConfusionMatrix


# ------------------------------------------------------------------------------ exact resume


def test_resume_at_epoch_boundary_reproduces_uninterrupted_run(blocks, straight, tmp_path):
    part = T.train(tiny_cfg(blocks, tmp_path / "b", epochs=1))
    assert state(part)["epoch"] == 1
    resumed = T.train(tiny_cfg(blocks, tmp_path / "b", epochs=2), resume=True)
    a, b = straight, state(resumed)
    assert_same_weights(a["model"], b["model"])
    assert a["step"] == b["step"] == 6
    for sa, sb in zip(
        a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True
    ):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    assert a["best"] == b["best"]


def test_resume_mid_epoch_is_exact_and_needs_the_rng_state(blocks, straight, tmp_path, monkeypatch):
    # Stop after 4 of 6 steps (epoch 2, batch 1 of 3), then continue.
    T.train(tiny_cfg(blocks, tmp_path / "b", max_steps=4))
    mid = state(tmp_path / "b" / "r")
    assert (mid["epoch"], mid["batch"], mid["step"]) == (1, 1, 4)
    resumed = T.train(tiny_cfg(blocks, tmp_path / "b"), resume=True)
    a, b = straight, state(resumed)
    assert_same_weights(a["model"], b["model"])
    assert a["steps"] == b["steps"]  # identical per-step losses, lr and positions
    assert a["history"][-1]["train_loss"] == b["history"][-1]["train_loss"]

    # Control: the same resume without restoring the RNG state diverges (stochastic dilation,
    # dropout), so the equality above is a real test of the RNG bookkeeping.
    T.train(tiny_cfg(blocks, tmp_path / "c", max_steps=4))
    from pointseg.engine import trainer

    monkeypatch.setattr(trainer, "set_rng_state", lambda s: torch.manual_seed(12345))
    broken = T.train(tiny_cfg(blocks, tmp_path / "c"), resume=True)
    c = state(broken)
    assert any(not torch.equal(a["model"][k], c["model"][k]) for k in a["model"])


def test_run_folder_contents_and_best_checkpoint(blocks, tmp_path):
    from pointseg.checkpoint import load_checkpoint, model_from_checkpoint

    run = T.train(tiny_cfg(blocks, tmp_path, epochs=3, tensorboard=True))
    for name in ("config.yaml", "last.pt", "best.pt", "log.csv", "steps.csv", "curves.png"):
        assert (run / name).is_file(), name
    assert any((run / "tb").glob("events.out.tfevents.*"))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["name"] == "resgcn4_tiny" and saved["epochs"] == 3
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert set(T.LOG_COLUMNS) <= set(rows[0])
    for r in rows:
        assert 0.0 <= float(r["val_miou"]) <= 1.0 and float(r["throughput"]) > 0
    steps = list(csv.DictReader((run / "steps.csv").open()))
    assert len(steps) == 9 and int(steps[-1]["step"]) == 9

    # best.pt holds the epoch with the highest validation mIoU (ties: the first one).
    vals = [float(r["val_miou"]) for r in rows]
    best = load_checkpoint(run / "best.pt")
    assert best["meta"]["epoch"] == int(np.argmax(vals)) + 1
    assert best["meta"]["best"] == pytest.approx(max(vals))
    model, ckpt = model_from_checkpoint(run / "last.pt")
    meta = ckpt["meta"]
    assert (
        meta["task"] == "segmentation" and meta["dataset"] == "s3dis" and len(meta["classes"]) == 13
    )
    data = meta["data"]
    assert data["test_area"] == 5 and 5 not in data["train_areas"]
    # The validation rooms come from the training areas, never from the test area.
    assert data["val_rooms"] and all(not r.startswith("Area_5") for r in data["val_rooms"])
    assert data["train_blocks"] + data["val_blocks"] == 16
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, 32, 9)).shape == (1, 32, 13)


def test_existing_run_needs_resume_or_overwrite(blocks, tmp_path):
    T.train(tiny_cfg(blocks, tmp_path, epochs=1, val_fraction=0.0))
    with pytest.raises(ConfigError, match="--resume"):
        T.train(tiny_cfg(blocks, tmp_path, epochs=1))
    with pytest.raises(ConfigError, match="does not exist"):
        T.train(tiny_cfg(blocks, tmp_path, run="other"), resume=True)


def test_modelnet_training_on_synthetic_meshes(tmp_path):
    from pointseg.checkpoint import load_checkpoint
    from pointseg.data.synthetic import synth_modelnet

    classes = ["chair", "lamp", "table"]
    synth_modelnet(tmp_path / "mn", classes=classes, per_class=6, seed=0, progress=False)
    cfg = T.resolve_config(
        "modelnet40",
        base=dict(data=str(tmp_path / "mn"), model="resgcn4_tiny_modelnet", num_points=64, epochs=2, batch_size=4,
                  out_dir=str(tmp_path / "runs"), threads=1, tensorboard=False, progress=False),
    )  # fmt: skip
    assert cfg.optimizer == "sgd" and cfg.augment and cfg.label_smoothing == 0.2  # ModelNet recipe
    run = T.train(cfg)
    ck = load_checkpoint(run / "best.pt")
    assert ck["meta"]["classes"] == classes and ck["model_config"]["num_classes"] == 3
    assert ck["meta"]["data"]["train_shapes"] + ck["meta"]["data"]["val_shapes"] == 18
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert len(rows) == 2 and all(0.0 <= float(r["val_oa"]) <= 1.0 for r in rows)
    assert rows[0]["val_miou"] == "" and rows[0]["throughput_unit"] == "samples/s"
    # Cosine schedule from 0.1 towards min_lr 1e-3 over 2 epochs: epoch-2 lr is the midpoint.
    assert float(rows[1]["lr"]) == pytest.approx(1e-3 + 0.5 * (0.1 - 1e-3))


def test_deterministic_mode_sets_torch_flags(blocks, tmp_path):
    threads = torch.get_num_threads()
    try:
        cfg = tiny_cfg(blocks, tmp_path, deterministic=True, threads=None, epochs=1)
        T.Trainer(cfg, T.D.DistInfo())
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.get_num_threads() == 1  # fixed thread count (default 1 in deterministic mode)
    finally:
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------- CLI


def cli(argv, capsys):
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.err


def test_cli_bad_input_gives_one_line_errors(blocks, tmp_path, capsys):
    common = ["--out", str(tmp_path), "--no-progress", "--no-tensorboard"]
    rc, err = cli(["train", "s3dis", "--blocks", str(tmp_path / "nope"), *common], capsys)
    assert (
        rc == 1
        and "does not exist" in err
        and "pointseg blocks s3dis" in err
        and "Traceback" not in err
    )
    rc, err = cli(["train", "s3dis", "--blocks", str(blocks), "--test-area", "4", *common], capsys)
    assert (
        rc == 1
        and "test area 4 has no rooms" in err
        and "1, 2, 3, 5" in err
        and "--test-area" in err
    )
    rc, err = cli(
        ["train", "s3dis", "--blocks", str(blocks), "--model", "resgcn999", *common], capsys
    )
    assert rc == 1 and "unknown model 'resgcn999'" in err and "resgcn28" in err
    rc, err = cli(
        ["train", "s3dis", "--blocks", str(blocks), "--set", "model.chanels=8", *common], capsys
    )
    assert rc == 1 and "chanels" in err and "channels" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    rc, err = cli(
        ["train", "s3dis", "--config", str(bad), "--blocks", str(blocks), *common], capsys
    )
    assert rc == 1 and "'epoch'" in err and "epochs" in err
    rc, err = cli(
        ["train", "s3dis", "--blocks", str(blocks), "--set", "model.num_blocks=12", *common], capsys
    )
    assert rc == 1 and "at least k·d = 176 points" in err and "samples have 32" in err
    rc, err = cli(["train", "s3dis", *common], capsys)
    assert rc == 1 and "--blocks" in err
    rc, err = cli(["train", "modelnet40", "--data", str(tmp_path / "none"), *common], capsys)
    assert rc == 1 and "does not exist" in err


def test_cli_train_then_resume_with_more_epochs(blocks, tmp_path, capsys):
    argv = ["train", "s3dis", "--blocks", str(blocks), "--model", "resgcn4_tiny", "--out", str(tmp_path), "--run", "c",
            "--batch-size", "4", "--threads", "1", "--no-progress", "--no-tensorboard"]  # fmt: skip
    assert main([*argv, "--epochs", "1"]) == 0
    assert main([*argv, "--epochs", "2", "--resume"]) == 0
    ck = state(tmp_path / "c")
    assert ck["epoch"] == 2 and len(ck["history"]) == 2
    assert yaml.safe_load((tmp_path / "c" / "config.yaml").read_text())["epochs"] == 2


def test_resume_at_max_steps_takes_no_extra_step(blocks, tmp_path, capsys):
    # The run's saved config keeps max_steps=4: resuming it as is must not train a 5th step, and
    # raising max_steps continues from step 4.
    argv = ["train", "s3dis", "--blocks", str(blocks), "--model", "resgcn4_tiny", "--out", str(tmp_path), "--run", "m",
            "--epochs", "2", "--batch-size", "4", "--threads", "1", "--no-progress", "--no-tensorboard"]  # fmt: skip
    assert main([*argv, "--max-steps", "4"]) == 0
    cut = state(tmp_path / "m")
    capsys.readouterr()
    rc, err = cli([*argv, "--resume"], capsys)
    again = state(tmp_path / "m")
    assert rc == 0 and again["step"] == cut["step"] == 4 and len(again["steps"]) == 4
    assert_same_weights(cut["model"], again["model"])
    assert "max_steps=4 already reached" in err and "max_steps=" in err
    assert main([*argv, "--resume", "--max-steps", "5"]) == 0
    assert state(tmp_path / "m")["step"] == 5


# ---------------------------------------------------------------------------------- signals


def test_sigterm_writes_resumable_checkpoint(blocks, tmp_path):
    run = tmp_path / "s"
    cmd = [sys.executable, "-m", "pointseg", "train", "s3dis", "--blocks", str(blocks), "--model", "resgcn4_tiny",
           "--out", str(tmp_path), "--run", "s", "--epochs", "1000", "--batch-size", "4", "--save-every", "1",
           "--threads", "1", "--no-progress", "--no-tensorboard"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.time() + 60
        while not (run / "last.pt").exists():  # written after the first step, inside the handlers
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "training did not start"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "resume with --resume" in err and "Traceback" not in err
    ck = state(run)
    assert 1 <= ck["step"] < 3000 and ck["epoch"] < 1000
    # The interrupted run continues from there.
    cfg = T.resolve_config("s3dis", base=yaml.safe_load((run / "config.yaml").read_text()))
    cfg.epochs = ck["epoch"] + 1
    T.train(cfg, resume=True)
    assert state(run)["epoch"] == ck["epoch"] + 1


# --------------------------------------------------------------------- schedules, stale temps


def test_warmup_cosine_is_stepped_per_optimiser_step(blocks, tmp_path):
    cfg = tiny_cfg(
        blocks, tmp_path, scheduler="warmup_cosine", warmup_steps=2, lr=0.01, min_lr=1e-4
    )
    run = T.train(cfg)
    lrs = [s[2] for s in state(run)["steps"]]  # lr after each step's scheduler update
    total = len(lrs)  # 2 epochs × 3 steps
    assert total == 6
    # factor(step) for the step that follows: warm-up 2/3, then cosine from 1 to min_lr/lr.
    expected = []
    for step in range(1, total + 1):
        if step < 2:
            expected.append(0.01 * (step + 1) / 3)
        else:
            t = (step - 2) / (total - 2)
            expected.append(1e-4 + (0.01 - 1e-4) * 0.5 * (1 + np.cos(np.pi * t)))
    np.testing.assert_allclose(lrs, expected, rtol=1e-9)
    assert lrs[-1] == pytest.approx(1e-4)


def test_resume_in_an_epoch_without_optimiser_step_gives_no_scheduler_warning(blocks, tmp_path):
    # max_steps stops at the last step of epoch 1 before its end-of-epoch bookkeeping; the resumed
    # process then ends that epoch (scheduler.step) without an optimiser step of its own.
    T.train(tiny_cfg(blocks, tmp_path, epochs=2, max_steps=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        run = T.train(tiny_cfg(blocks, tmp_path, epochs=2), resume=True)
    assert state(run)["step"] == 6


def test_stale_checkpoint_temporaries_are_removed_on_resume_and_save(blocks, tmp_path, capsys):
    from pointseg.io import atomic_write, remove_stale_temps

    run = T.train(tiny_cfg(blocks, tmp_path, epochs=1))
    # The pattern matches the temporaries atomic_write really makes (what SIGKILL would leave).
    with pytest.raises(KeyboardInterrupt), atomic_write(run / "last.pt") as tmp:
        assert remove_stale_temps(run / "last.pt") == [tmp]
        raise KeyboardInterrupt
    stale = [run / ".last.pt.k1ll3d.tmp", run / ".best.pt.x9y8z7.tmp"]
    for f in stale:
        f.write_bytes(b"half a checkpoint")
    other = run / ".notes.txt.abc.tmp"  # not ours: left alone
    other.write_bytes(b"x")
    T.train(tiny_cfg(blocks, tmp_path, epochs=2), resume=True)
    assert not any(f.exists() for f in stale) and other.exists()
    assert "removed stale temporary checkpoint" in capsys.readouterr().err
    # ... and by a save of a fresh run that overwrites the folder.
    stale[0].write_bytes(b"again")
    T.train(tiny_cfg(blocks, tmp_path, epochs=1), overwrite=True)
    assert not stale[0].exists()


def test_checkpoint_records_the_blocks_recipe_and_keeps_it_when_the_blocks_move(tmp_path):
    """Blocks with a manifest (`pointseg blocks`): every checkpoint stores their input recipe in
    meta["input"], so eval / predict / view feed the model the same recipe after the blocks
    folder is moved or deleted; published blocks (no manifest) record none."""
    import json
    import shutil

    from pointseg.recipe import checkpoint_recipe

    root = make_blocks(tmp_path / "blocks", points=32)
    params = {"block_size": 1.5, "num_point": 32, "min_points": 20, "centering": "sampled"}
    (root / "train" / "manifest.json").write_text(json.dumps({"params": params}))
    run = T.train(tiny_cfg(root, tmp_path / "runs", epochs=1))
    for name in ("last.pt", "best.pt"):
        stored = torch.load(run / name, weights_only=True)["meta"]["input"]
        assert (stored["block_size"], stored["num_point"], stored["min_points"]) == (1.5, 32, 20)
        assert stored["centering"] == "sampled" and "manifest.json" in stored["source"]
    shutil.rmtree(root)  # the blocks are gone: the recipe still comes from the checkpoint
    recipe = checkpoint_recipe(state(run))
    assert (recipe.block_size, recipe.num_point, recipe.centering) == (1.5, 32, "sampled")
    assert recipe.source.startswith("the checkpoint's input recipe (recorded at training")
    assert recipe.k == state(run)["model_config"]["k"]

    plain = make_blocks(tmp_path / "published")  # no manifest
    assert "input" not in state(T.train(tiny_cfg(plain, tmp_path / "runs2", epochs=1)))["meta"]
