"""Fidelity to the original deep_gcns_torch ResGCN-28, layer by layer (DESIGN §7).

Fixture: ../shared/data/reference (see its README): an original-format checkpoint and, for one
input of 2 × 512 points, every layer's input, neighbour indices, output, and the logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from pointseg.checkpoint import load_checkpoint, model_from_checkpoint
from pointseg.cli import main as cli_main
from pointseg.convert import (
    convert_original,
    convert_state_dict,
    infer_original_config,
    load_original_state_dict,
    original_key_map,
)
from pointseg.errors import ConfigError
from pointseg.graph import dilated_knn
from pointseg.models import create_model, get_config

REF = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "reference"
CKPT = REF / "resgcn28_original_format.pth"
LAYERS = REF / "resgcn28_original_layers.npz"
TOL = 1e-4

needs_ref = pytest.mark.skipif(
    not (CKPT.is_file() and LAYERS.is_file()), reason="reference fixture not found"
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def original_state():
    return load_original_state_dict(CKPT)[0]


@pytest.fixture(scope="module")
def converted(original_state):
    return convert_original(original_state)[0]


@pytest.fixture(scope="module")
def ref():
    """Fixture arrays, channels-last like pointseg: inputs/outputs (L, B, N, C)."""
    with np.load(LAYERS) as z:
        return {
            "x": torch.from_numpy(z["x"]),  # (B, N, 9)
            "nbrs": torch.from_numpy(z["neighbours"].astype(np.int64)),  # (28, B, N, k)
            "inputs": torch.from_numpy(z["layer_inputs"]).transpose(2, 3).contiguous(),
            "outputs": torch.from_numpy(z["layer_outputs"]).transpose(2, 3).contiguous(),
            "logits": torch.from_numpy(z["logits"]).transpose(1, 2).contiguous(),  # (B, N, 13)
        }


def rel_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours.double() - theirs.double()).norm() / theirs.double().norm())


# ---------------------------------------------------------------------------------- conversion


@needs_ref
def test_converted_model_is_resgcn28_with_every_weight(original_state, converted):
    assert converted.config == get_config("resgcn28")
    assert converted.num_parameters() == 3_644_301
    assert len(original_state) == 219 == len(converted.state_dict())
    ours = converted.state_dict()
    for key, orig in original_key_map(converted).items():
        expect = original_state[orig]
        if expect.dim() == 4:
            expect = expect[:, :, 0, 0]  # Conv2d [out, in, 1, 1] -> Linear [out, in]
        assert torch.equal(ours[key], expect), key


@needs_ref
def test_every_layer_reproduces_the_original_outputs(converted, ref):
    assert converted.training is False
    errors = []
    with torch.no_grad():
        for i in range(28):
            h = ref["x"] if i == 0 else ref["inputs"][i - 1]
            if i > 0:  # the saved input of block i is the saved output of layer i − 1
                assert torch.equal(h, ref["outputs"][i - 1])
            out, used = converted.forward_layer(i, h, ref["nbrs"][i])
            assert torch.equal(used, ref["nbrs"][i])
            errors.append(rel_error(out, ref["outputs"][i]))
    assert max(errors) <= TOL, errors


@needs_ref
def test_fusion_and_head_reproduce_the_original_logits(converted, ref):
    with torch.no_grad():
        logits = converted.forward_head(list(ref["outputs"].unbind(0)))
    assert logits.shape == (2, 512, 13)
    assert rel_error(logits, ref["logits"]) <= TOL
    assert torch.equal(logits.argmax(-1), ref["logits"].argmax(-1))


@needs_ref
def test_dilated_knn_reproduces_the_original_neighbours(ref):
    found = []
    for i in range(28):
        h = ref["x"][..., :3].contiguous() if i == 0 else ref["inputs"][i - 1]
        idx = dilated_knn(h, 16, max(i, 1))  # head: d = 1; block i: d = i
        hit = (idx.unsqueeze(-1) == ref["nbrs"][i].unsqueeze(-2)).any(-1)  # (B, N, k) as sets
        found.append(hit.float().mean().item())
    # near-ties in float32 may swap a few ranks at the dilation boundary, nothing more
    assert sum(found) / len(found) >= 0.999, found
    assert min(found) >= 0.998, found
    assert found[0] == 1.0  # the xyz graph has no near-ties


class OriginalMRConv2d(torch.nn.Module):
    """The original dense MRConv2d: Conv2d(cat[x, max_j(x_j − x_i)]) → ReLU → BN2d, (B, C, N, 1)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.nn = torch.nn.Sequential(
            torch.nn.Conv2d(2 * c_in, c_out, 1), torch.nn.ReLU(), torch.nn.BatchNorm2d(c_out)
        )

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        b, c, n, _ = x.shape
        flat = x.squeeze(-1).transpose(1, 2)  # (B, N, C)
        xj = torch.stack([flat[i][idx[i]] for i in range(b)])  # (B, N, k, C)
        rel = (xj - flat.unsqueeze(2)).amax(2)  # (B, N, C)
        return self.nn(torch.cat([x, rel.transpose(1, 2).unsqueeze(-1)], dim=1))


@needs_ref
def test_mrconv_conversion_matches_the_original_formula(original_state, ref):
    model, config = convert_original(original_state, "resmrgcn28")
    assert config.conv == "mr"
    orig = OriginalMRConv2d(64, 64).eval()
    prefix = "backbone.4.body.gconv.nn."
    orig.load_state_dict({k[len("backbone.4.body.gconv.") :]: v for k, v in original_state.items()
                          if k.startswith(prefix)})  # fmt: skip
    h = ref["inputs"][4]  # input of block 5, (B, N, 64)
    with torch.no_grad():
        ours, _ = model.forward_layer(5, h, ref["nbrs"][5])
        ours = ours - h  # block 5 = conv + residual; compare the conv
        theirs = orig(h.transpose(1, 2).unsqueeze(-1), ref["nbrs"][5]).squeeze(-1).transpose(1, 2)
    assert rel_error(ours, theirs) <= TOL


@needs_ref
def test_layer_check_catches_a_wrong_architecture(original_state):
    # the same weights read as a PlainGCN (no residual add) must fail the layer-by-layer check
    from pointseg.convert import check_layers

    model, _ = convert_original(original_state, "plaingcn28")
    result = check_layers(model, LAYERS, check_graphs=False)
    assert result["layers"][0] <= TOL  # the head conv has no residual either way
    assert min(result["layers"][1:]) > 0.1


# ---------------------------------------------------------------------------------- errors


@needs_ref
def test_converter_names_missing_unexpected_and_misshaped_keys(original_state, converted):
    state = dict(original_state)
    state.pop("backbone.3.body.gconv.nn.2.running_var")
    state["backbone.3.body.gconv.nn.5.weight"] = torch.zeros(64)
    with pytest.raises(ConfigError) as info:
        convert_state_dict(state, converted)
    msg = str(info.value)
    assert "missing keys ['backbone.3.body.gconv.nn.2.running_var']" in msg
    assert "unexpected keys ['backbone.3.body.gconv.nn.5.weight']" in msg

    state = dict(original_state)
    state["prediction.1.0.weight"] = torch.zeros(256, 500, 1, 1)
    with pytest.raises(ConfigError, match=r"'prediction.1.0.weight' has shape \(256, 500, 1, 1\)"):
        convert_state_dict(state, converted)
    state = dict(original_state)
    state["fusion_block.0.weight"] = torch.zeros(1024, 1792, 3, 1)
    with pytest.raises(ConfigError, match="expected a 1×1 conv weight"):
        convert_state_dict(state, converted)
    state = {k: v for k, v in original_state.items() if not k.startswith("fusion_block.0.")}
    with pytest.raises(ConfigError, match="missing key 'fusion_block.0.weight'"):
        convert_original(state)
    with pytest.raises(ConfigError, match="use order conv_act_norm"):
        convert_original(original_state, order="conv_norm_act")


def test_load_original_rejects_other_files(tmp_path):
    with pytest.raises(ConfigError, match="original checkpoint not found"):
        load_original_state_dict(tmp_path / "none.pth")
    path = tmp_path / "x.pth"
    torch.save({"epoch": 1, "net": {}}, path)
    with pytest.raises(
        ConfigError, match=r"no 'state_dict' key; top-level keys are \['epoch', 'net'\]"
    ):
        load_original_state_dict(path)
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, path)
    with pytest.raises(ConfigError, match="not an original deep_gcns_torch dense model"):
        load_original_state_dict(path)


# ---------------------------------------------------------------------------------- round trips


def to_original(model: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """Export our weights under the original key names and shapes (the converter's inverse)."""
    ours = model.state_dict()
    out = {}
    for key, orig in original_key_map(model).items():
        value = ours[key]
        if key.endswith("weight") and value.dim() == 2:
            value = value[:, :, None, None]  # Linear -> Conv2d 1×1
        out[prefix + orig] = value.clone()
    return out


@pytest.mark.parametrize(
    "name",
    [
        "resgcn4_tiny",
        "densegcn4_tiny",
        "plaingcn4_tiny",
        "resgcn4_tiny_modelnet",
        "densegcn4_tiny_modelnet",
    ],
)
def test_original_format_round_trip_infers_the_architecture(name):
    torch.manual_seed(0)
    model = create_model(name)
    for p in model.state_dict().values():  # distinct values everywhere, BN stats included
        if p.is_floating_point():
            p.uniform_(0.5, 1.5)
    state = to_original(model, prefix="module.")  # DataParallel prefix as saved by multi-GPU runs
    state = {k[len("module.") :]: v for k, v in state.items()}
    config = infer_original_config(state, name)
    assert config == model.config
    back, _ = convert_original(state, name)
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    if name.endswith("modelnet"):  # the ModelNet layout: no bias in head conv and fusion
        assert "head.gconv.nn.0.bias" not in state and "fusion_block.0.bias" not in state
        assert "prediction.2.0.weight" in state  # classifier right after the hidden layers
    else:
        assert "prediction.3.0.weight" in state  # Dropout sits at index 2 in segmentation


# ---------------------------------------------------------------------------------- CLI


@needs_ref
def test_cli_convert_verify_and_load(tmp_path, capsys, converted, ref):
    out = tmp_path / "ours.pt"
    code = cli_main(
        ["convert", "--original", str(CKPT), "--out", str(out), "--verify", str(LAYERS)]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert "3,644,301 parameters" in text and "verify OK" in text
    ckpt = load_checkpoint(out)
    assert ckpt["meta"]["dataset"] == "s3dis" and ckpt["meta"]["original_epoch"] == 0
    model, _ = model_from_checkpoint(out)
    assert model.config == converted.config
    for key, value in converted.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    with torch.no_grad():
        logits = model.forward_head(list(ref["outputs"].unbind(0)))
    assert rel_error(logits, ref["logits"]) <= TOL


@needs_ref
def test_cli_convert_verify_failure_exits_1(tmp_path, capsys, monkeypatch):
    import pointseg.convert

    def bad_check(model, path):  # a conversion that is off by 1e-3 in layer 7
        return {"layers": [0.0] * 7 + [1e-3] + [0.0] * 20, "logits": 0.0, "graph_agreement": [1.0]}

    monkeypatch.setattr(pointseg.convert, "check_layers", bad_check)
    code = cli_main(["convert", "--original", str(CKPT), "--out", str(tmp_path / "o.pt"),
                     "--verify", str(LAYERS)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "1.00e-03 (layer 7)" in out and "verify FAILED" in out


def test_cli_convert_errors(tmp_path, capsys):
    assert cli_main(["convert", "--original", str(tmp_path / "no.pth"), "--out", "x.pt"]) == 1
    assert "original checkpoint not found" in capsys.readouterr().err
    model = create_model("resgcn4_tiny")
    from pointseg.checkpoint import save_checkpoint

    ours = save_checkpoint(tmp_path / "ours.pt", model_config=model.config,
                           model_state=model.state_dict())  # fmt: skip
    assert cli_main(["convert", "--original", str(ours), "--out", str(tmp_path / "y.pt")]) == 1
    assert "already a pointseg checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "y.pt").exists()


def original_basic_conv(c_in, c_out, act=True, norm=True, bias=True, drop=0.0, leaky=False):
    """The original `BasicConv`: Conv2d 1×1 → act → BatchNorm2d → Dropout2d, (B, C, N, 1)."""
    layers = [torch.nn.Conv2d(c_in, c_out, 1, bias=bias)]
    if act:
        layers.append(torch.nn.LeakyReLU(0.2) if leaky else torch.nn.ReLU())
    if norm:
        layers.append(torch.nn.BatchNorm2d(c_out))
    if drop:
        layers.append(torch.nn.Dropout2d(drop))
    return torch.nn.Sequential(*layers)


class OriginalHeads(torch.nn.Module):
    """Fusion + prediction of the original sem_seg_dense / modelnet_cls models (channels-first)."""

    def __init__(self, c) -> None:
        super().__init__()
        feats, fc, (h1, h2) = c.feature_channels, c.fusion_channels, c.head_channels
        self.task = c.task
        if c.task == "segmentation":
            self.fusion_block = original_basic_conv(feats, fc)
            self.prediction = torch.nn.Sequential(
                original_basic_conv(feats + fc, h1),
                original_basic_conv(h1, h2),
                torch.nn.Dropout(c.dropout),
                original_basic_conv(h2, c.num_classes, act=False, norm=False),
            )
        else:
            self.fusion_block = original_basic_conv(feats, fc, bias=False, leaky=True)
            self.prediction = torch.nn.Sequential(
                original_basic_conv(2 * fc, h1, drop=c.dropout, leaky=True),
                original_basic_conv(h1, h2, drop=c.dropout, leaky=True),
                original_basic_conv(h2, c.num_classes, act=False, norm=False),
            )

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # (B, C, N, 1)
        fusion = self.fusion_block(feats)
        if self.task == "segmentation":
            g = torch.max_pool2d(fusion, kernel_size=[feats.shape[2], feats.shape[3]])
            g = torch.repeat_interleave(g, repeats=feats.shape[2], dim=2)
            return self.prediction(torch.cat((g, feats), dim=1)).squeeze(-1)  # (B, classes, N)
        x1 = F.adaptive_max_pool2d(fusion, 1)
        x2 = F.adaptive_avg_pool2d(fusion, 1)
        return self.prediction(torch.cat((x1, x2), dim=1)).squeeze(-1).squeeze(-1)


@pytest.mark.parametrize("name", ["resgcn4_tiny", "resgcn4_tiny_modelnet"])
def test_heads_match_the_original_modules_with_converted_weights(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    for key, p in model.state_dict().items():  # non-trivial BN statistics and affine parameters
        if "norm" in key and p.is_floating_point():
            p.uniform_(0.5, 1.5)
    orig = OriginalHeads(model.config).eval()
    state = to_original(model)
    orig.load_state_dict(
        {k: v for k, v in state.items() if k.startswith(("fusion_block.", "prediction."))}
    )
    feats = torch.randn(3, 40, model.config.feature_channels)  # (B, N, C)
    with torch.no_grad():
        ours = model.head(feats)
        theirs = orig(feats.transpose(1, 2).unsqueeze(-1))
    if model.config.task == "segmentation":
        theirs = theirs.transpose(1, 2)  # (B, N, classes)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
