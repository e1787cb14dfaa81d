"""Checkpoints: save → load gives identical logits; bad files fail with a named reason."""

from __future__ import annotations

import os

import pytest
import torch

from pointseg.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    load_state_dict_checked,
    model_from_checkpoint,
    save_checkpoint,
)
from pointseg.errors import ConfigError
from pointseg.models import create_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class NotSafe:
    """A class torch.load(weights_only=True) does not allow."""


def trained_a_bit(name: str):
    """A model whose weights and BN statistics differ from a fresh one (one Adam step)."""
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.rand(2, 32, model.config.in_channels)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(x).square().mean().backward()
    opt.step()
    return model, opt, x


@pytest.mark.parametrize("name", ["resgcn4_tiny", "densegcn4_tiny", "resgcn4_tiny_modelnet"])
def test_save_load_gives_identical_logits(tmp_path, name):
    model, opt, x = trained_a_bit(name)
    path = tmp_path / "run" / "last.pt"
    rng = torch.get_rng_state()
    save_checkpoint(
        path,
        model_config=model.config,
        model_state=model.state_dict(),
        meta={"dataset": "synthetic", "classes": ["a", "b"]},
        optimizer=opt.state_dict(),
        epoch=3,
        step=17,
        rng={"torch": rng},
    )
    # the atomic write leaves exactly the checkpoint, no temp file
    assert sorted(os.listdir(path.parent)) == ["last.pt"]
    loaded, ckpt = model_from_checkpoint(path)  # no flags: the config comes from the file
    assert not loaded.training
    assert loaded.config == model.config
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert ckpt["format"] == "pointseg" and ckpt["format_version"] == FORMAT_VERSION
    assert (ckpt["epoch"], ckpt["step"]) == (3, 17)
    assert torch.equal(ckpt["rng"]["torch"], rng)
    meta = ckpt["meta"]
    assert meta["task"] == model.config.task and meta["dataset"] == "synthetic"
    assert meta["classes"] == ["a", "b"]
    assert meta["torch_version"] == str(torch.__version__)
    assert {"pointseg_version", "created"} <= set(meta)
    # the optimizer state restores too
    opt2 = torch.optim.Adam(loaded.parameters(), lr=1e-2)
    opt2.load_state_dict(ckpt["optimizer"])
    assert opt2.state_dict()["state"][0]["step"] == 1


def test_model_from_in_memory_dict_and_ddp_prefix(tmp_path):
    model, _, x = trained_a_bit("resgcn4_tiny")
    path = save_checkpoint(
        tmp_path / "c.pt",
        model_config=model.config.to_dict(),  # a plain dict config is accepted too
        model_state={f"module.{k}": v for k, v in model.state_dict().items()},
    )
    loaded, _ = model_from_checkpoint(load_checkpoint(path))
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_save_overwrites_atomically_and_keeps_old_file_on_failure(tmp_path):
    model = create_model("resgcn4_tiny")
    path = tmp_path / "c.pt"
    save_checkpoint(path, model_config=model.config, model_state=model.state_dict(), epoch=1)
    save_checkpoint(path, model_config=model.config, model_state=model.state_dict(), epoch=2)
    assert load_checkpoint(path)["epoch"] == 2

    # an object torch.load(weights_only=True) refuses is caught before it replaces the file
    with pytest.raises(ValueError, match="weights_only"):
        save_checkpoint(
            path, model_config=model.config, model_state=model.state_dict(), extra=NotSafe()
        )
    assert load_checkpoint(path)["epoch"] == 2
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(path, model_config=model.config, model_state={}, model={})


def _write(path, obj):
    torch.save(obj, path)
    return path


def _good(tmp_path):
    model = create_model("resgcn4_tiny")
    path = save_checkpoint(
        tmp_path / "good.pt", model_config=model.config, model_state=model.state_dict()
    )
    return torch.load(path, weights_only=True)


def test_bad_checkpoints_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="checkpoint not found: .*missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ConfigError, match="garbage.pt: cannot be read as a torch checkpoint"):
        load_checkpoint(garbage)

    with pytest.raises(ConfigError, match="not a pointseg checkpoint .a list"):
        load_checkpoint(_write(tmp_path / "list.pt", [1, 2]))

    with pytest.raises(ConfigError, match="key 'format' is None.*\\['weights'\\]"):
        load_checkpoint(_write(tmp_path / "other.pt", {"weights": torch.zeros(1)}))

    original = {"epoch": 0, "state_dict": {"head.gconv.nn.0.weight": torch.zeros(1)}}
    with pytest.raises(ConfigError, match="original deep_gcns_torch checkpoint.*pointseg convert"):
        load_checkpoint(_write(tmp_path / "orig.pth", original))

    good = _good(tmp_path)
    for key in ("model", "model_config", "meta"):
        broken = {k: v for k, v in good.items() if k != key}
        with pytest.raises(ConfigError, match=f"missing key '{key}'"):
            load_checkpoint(_write(tmp_path / f"no_{key}.pt", broken))

    newer = {**good, "format_version": FORMAT_VERSION + 1}
    with pytest.raises(ConfigError, match="newer than this pointseg supports"):
        load_checkpoint(_write(tmp_path / "newer.pt", newer))

    bad_config = {**good, "model_config": {**good["model_config"], "widht": 3}}
    with pytest.raises(ConfigError, match=r"bad 'model_config'.*\['widht'\]"):
        load_checkpoint(_write(tmp_path / "badcfg.pt", bad_config))


def test_unsafe_pickles_are_refused(tmp_path):
    # weights_only=True: a pickled arbitrary object must not be executed / loaded
    good = _good(tmp_path)
    path = tmp_path / "unsafe.pt"
    torch.save({**good, "meta": {"when": __import__("datetime").datetime(2020, 1, 1)}}, path)
    with pytest.raises(ConfigError, match="unsafe.pt: cannot be read.*datetime"):
        load_checkpoint(path)


def test_state_dict_mismatch_names_keys(tmp_path):
    good = _good(tmp_path)
    state = dict(good["model"])
    state.pop("blocks.0.conv.lin.weight")
    state["blocks.9.conv.lin.weight"] = torch.zeros(1)
    state["stem.lin.bias"] = torch.zeros(3)
    path = _write(tmp_path / "mismatch.pt", {**good, "model": state})
    with pytest.raises(ConfigError) as info:
        model_from_checkpoint(path)
    msg = str(info.value)
    assert "mismatch.pt" in msg
    assert "missing keys ['blocks.0.conv.lin.weight']" in msg
    assert "unexpected keys ['blocks.9.conv.lin.weight']" in msg
    assert "stem.lin.bias: checkpoint (3,) vs model (16,)" in msg


def test_load_state_dict_checked_accepts_exact_state():
    model = create_model("resgcn4_tiny")
    other = create_model("resgcn4_tiny")
    load_state_dict_checked(other, model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 other.state_dict().values(), strict=True))  # fmt: skip
