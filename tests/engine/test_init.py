"""`pointseg train s3dis --init <checkpoint>`: weights from a checkpoint (converted ones included),
strict backbone, classifier re-initialised when the class count differs, resume still exact."""

from __future__ import annotations

import pytest
import torch

from pointseg.checkpoint import load_checkpoint, save_checkpoint
from pointseg.cli import main
from pointseg.engine import train as T
from pointseg.errors import ConfigError
from pointseg.models import create_model
from tests.engine.test_train import make_blocks, state, tiny_cfg


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    return make_blocks(tmp_path_factory.mktemp("blocks"))


def _source(path, name="resgcn4_tiny", seed=0, **overrides):
    torch.manual_seed(seed)
    model = create_model(name, **overrides)
    with torch.no_grad():  # distinct, non-default values everywhere (BN statistics included)
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.uniform_(0.5, 1.5)
    save_checkpoint(path, model_config=model.config, model_state=model.state_dict(),
                    meta={"dataset": "s3dis"})  # fmt: skip
    return model


def test_init_loads_every_weight_of_the_source(blocks, tmp_path, capsys):
    src = _source(tmp_path / "src.pt", "resgcn4_tiny", k=3)
    cfg = tiny_cfg(blocks, tmp_path, init=str(tmp_path / "src.pt"), model_args={}, epochs=1)
    trainer = T.Trainer(cfg, T.D.DistInfo())
    assert trainer.model_config == src.config  # the architecture is the checkpoint's (k=3)
    for key, value in src.state_dict().items():
        assert torch.equal(trainer.model_raw.state_dict()[key], value), key
    assert "loaded every weight" in capsys.readouterr().out


def test_init_replaces_the_classifier_when_the_class_count_differs(blocks, tmp_path, capsys):
    src = _source(tmp_path / "src5.pt", "dgcnn_s3dis", k=4, emb_channels=16,
                  head_channels=(16, 8), num_classes=5)  # fmt: skip
    cfg = tiny_cfg(blocks, tmp_path, init=str(tmp_path / "src5.pt"), model_args={}, epochs=1)
    trainer = T.Trainer(cfg, T.D.DistInfo())
    assert trainer.model_config.num_classes == 13 and trainer.model_config.k == 4
    ours = trainer.model_raw.state_dict()
    assert ours["head.classifier.weight"].shape == (13, 8)
    for key, value in src.state_dict().items():
        if key.startswith("head.classifier."):
            continue
        assert torch.equal(ours[key], value), key
    assert "classifier was re-initialised (5 classes in the checkpoint, 13 in the data" in (
        capsys.readouterr().out
    )


def test_init_is_strict_on_the_backbone(blocks, tmp_path):
    _source(tmp_path / "bad.pt", "resgcn4_tiny")
    ckpt = load_checkpoint(tmp_path / "bad.pt")
    ckpt["model"].pop("blocks.0.conv.lin.weight")
    torch.save(ckpt, tmp_path / "bad.pt")
    cfg = tiny_cfg(blocks, tmp_path, init=str(tmp_path / "bad.pt"), model_args={})
    with pytest.raises(ConfigError, match=r"missing keys \['blocks.0.conv.lin.weight'\]"):
        T.Trainer(cfg, T.D.DistInfo())
    wrong = _source(tmp_path / "cls.pt", "resgcn4_tiny_modelnet")
    assert wrong.config.task == "classification"
    cfg = tiny_cfg(blocks, tmp_path, init=str(tmp_path / "cls.pt"), model_args={})
    with pytest.raises(ConfigError, match="a classification model; s3dis trains a segmentation"):
        T.Trainer(cfg, T.D.DistInfo())


def test_init_run_resumes_exactly(blocks, tmp_path, capsys):
    _source(tmp_path / "src.pt", "resgcn4_tiny", k=3)
    argv = ["train", "s3dis", "--blocks", str(blocks), "--init", str(tmp_path / "src.pt"),
            "--batch-size", "4", "--seed", "3", "--threads", "1", "--no-tensorboard",
            "--no-progress", "--set", "val_fraction=0.25"]  # fmt: skip
    straight = tmp_path / "straight"
    assert main([*argv, "--out", str(straight), "--run", "r", "--epochs", "2"]) == 0
    split = tmp_path / "split"
    assert main([*argv, "--out", str(split), "--run", "r", "--epochs", "1"]) == 0
    (tmp_path / "src.pt").unlink()  # resume never reads the init checkpoint again
    assert main(["train", "s3dis", "--out", str(split), "--run", "r", "--resume",
                 "--epochs", "2"]) == 0  # fmt: skip
    a, b = state(straight / "r"), state(split / "r")
    assert a["model_config"]["k"] == 3
    for key, value in a["model"].items():
        assert torch.equal(b["model"][key], value), key
    capsys.readouterr()
