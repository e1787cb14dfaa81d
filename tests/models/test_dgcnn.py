"""DGCNN (`dgcnn_s3dis`) and the conversion of the published DGCNN S3DIS model (issue 16).

Three levels of trust: the layers against textbook formulations written here; the whole model
against a re-implementation of the original `DGCNN_semseg_s3dis` forward (dgcnn.pytorch, written
out below in its own channels-first Conv2d style) with random weights; and the published weights
against the fixture recorded by the original code on real blocks (../shared/data/reference).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pointseg.checkpoint import load_checkpoint, model_from_checkpoint
from pointseg.cli import main as cli_main
from pointseg.convert import convert_file, load_original_state_dict
from pointseg.convert_dgcnn import check_dgcnn_layers, convert_dgcnn_state_dict, detect_format
from pointseg.errors import ConfigError
from pointseg.models import create_model, get_config
from pointseg.models.dgcnn import DGCNN, DGCNNConfig
from pointseg.nn import EdgeConv
from pointseg.nn.edge_mlp_conv import EdgeMLPConv
from tests.conftest import SHARED_DATA

MODEL_T7 = SHARED_DATA / "pretrained" / "dgcnn_s3dis" / "model_5.t7"
LAYERS = SHARED_DATA / "reference" / "dgcnn_s3dis_area5_layers.npz"
needs_fixture = pytest.mark.skipif(
    not (MODEL_T7.is_file() and LAYERS.is_file()),
    reason=f"the DGCNN fixture is not in {SHARED_DATA} (../shared/data absent)",
)


def _randomise(module: nn.Module, seed: int = 0) -> None:
    """Distinct values everywhere, BN statistics and negative BN scales included."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.5)


# ------------------------------------------------------------------------------- EdgeMLPConv
def _edge_mlp_reference(conv: EdgeMLPConv, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Textbook: gather [x_i, x_j − x_i] (B, N, k, 2C), then every layer on every edge, max."""
    b, n, c = x.shape
    k = idx.shape[-1]
    xj = torch.stack([x[i][idx[i]] for i in range(b)])  # (B, N, k, C)
    xi = x.unsqueeze(2).expand(b, n, k, c)
    h = conv.lin(torch.cat([xi, xj - xi], dim=-1)).reshape(b, n * k, -1)
    h = conv.act(conv.norm(h))  # conv_norm_act
    for layer in conv.mlp:
        h = layer(h)
    return h.view(b, n, k, -1).amax(dim=2)


@pytest.mark.parametrize("training", [True, False])
def test_edge_mlp_conv_equals_the_textbook_formulation(training):
    torch.manual_seed(0)
    conv = EdgeMLPConv(5, [8, 6], bias=True).double()
    _randomise(conv)
    ref = EdgeMLPConv(5, [8, 6], bias=True).double()
    ref.load_state_dict(conv.state_dict())
    conv.train(training)
    ref.train(training)
    x = torch.randn(2, 24, 5, dtype=torch.float64, requires_grad=True)
    idx = torch.randint(0, 24, (2, 24, 4))
    out = conv(x, idx)
    x2 = x.detach().clone().requires_grad_(True)
    expected = _edge_mlp_reference(ref, x2, idx)
    torch.testing.assert_close(out, expected)
    out.square().sum().backward()
    expected.square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    for (name, p), q in zip(conv.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    for name, buf in conv.state_dict().items():  # BN running statistics over every edge
        torch.testing.assert_close(buf, ref.state_dict()[name], msg=name)


def test_edge_mlp_conv_inference_chunks_and_one_layer_equals_edge_conv(monkeypatch):
    torch.manual_seed(1)
    conv = EdgeMLPConv(4, [8, 8]).eval()
    _randomise(conv)
    x, idx = torch.randn(2, 40, 4), torch.randint(0, 40, (2, 40, 5))
    with torch.no_grad():
        whole = conv(x, idx)
        monkeypatch.setattr("pointseg.nn.edge_mlp_conv._ROWS", 7)
        torch.testing.assert_close(conv(x, idx), whole, rtol=0, atol=0)
    one = EdgeMLPConv(4, [8], order="conv_norm_act", act="leaky_relu", bias=False).eval()
    edge = EdgeConv(4, 8, order="conv_norm_act", act="leaky_relu", bias=False).eval()
    _randomise(one, 2)
    edge.load_state_dict(one.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(one(x, idx), edge(x, idx), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------- the original model, rewritten
def _original_knn(x: torch.Tensor, k: int) -> torch.Tensor:
    """dgcnn.pytorch `knn`: topk of −‖x_i − x_j‖², x (B, C, N) → (B, N, k)."""
    inner = -2 * torch.matmul(x.transpose(2, 1), x)
    xx = torch.sum(x**2, dim=1, keepdim=True)
    return (-xx - inner - xx.transpose(2, 1)).topk(k=k, dim=-1)[1]


def _original_graph_feature(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """dgcnn.pytorch `get_graph_feature`: (B, C, N) → (B, 2C, N, k) = [x_j − x_i, x_i]."""
    b, c, n = x.shape
    k = idx.shape[-1]
    flat = (idx + torch.arange(b).view(-1, 1, 1) * n).reshape(-1)
    xt = x.transpose(2, 1).contiguous()  # (B, N, C)
    feature = xt.view(b * n, -1)[flat].view(b, n, k, c)
    xt = xt.view(b, n, 1, c).repeat(1, 1, k, 1)
    return torch.cat((feature - xt, xt), dim=3).permute(0, 3, 1, 2).contiguous()


class OriginalDGCNNSemSeg(nn.Module):
    """The published `DGCNN_semseg_s3dis` (dgcnn.pytorch @ 07d534c), k = 20, emb_dims 1024."""

    def __init__(self, k: int = 20, emb: int = 1024, classes: int = 13) -> None:
        super().__init__()
        self.k = k
        self.bn1, self.bn2, self.bn3, self.bn4, self.bn5 = (nn.BatchNorm2d(64) for _ in range(5))
        self.bn6, self.bn7, self.bn8 = nn.BatchNorm1d(emb), nn.BatchNorm1d(512), nn.BatchNorm1d(256)
        act = nn.LeakyReLU(negative_slope=0.2)
        self.conv1 = nn.Sequential(nn.Conv2d(18, 64, 1, bias=False), self.bn1, act)
        self.conv2 = nn.Sequential(nn.Conv2d(64, 64, 1, bias=False), self.bn2, act)
        self.conv3 = nn.Sequential(nn.Conv2d(128, 64, 1, bias=False), self.bn3, act)
        self.conv4 = nn.Sequential(nn.Conv2d(64, 64, 1, bias=False), self.bn4, act)
        self.conv5 = nn.Sequential(nn.Conv2d(128, 64, 1, bias=False), self.bn5, act)
        self.conv6 = nn.Sequential(nn.Conv1d(192, emb, 1, bias=False), self.bn6, act)
        self.conv7 = nn.Sequential(nn.Conv1d(emb + 192, 512, 1, bias=False), self.bn7, act)
        self.conv8 = nn.Sequential(nn.Conv1d(512, 256, 1, bias=False), self.bn8, act)
        self.dp1 = nn.Dropout(p=0.5)
        self.conv9 = nn.Conv1d(256, classes, 1, bias=False)

    def forward(self, x: torch.Tensor, graphs: list[torch.Tensor] | None = None):
        n = x.size(2)
        used = []
        idx = _original_knn(x[:, 6:], self.k) if graphs is None else graphs[0]
        used.append(idx)
        h = self.conv2(self.conv1(_original_graph_feature(x, idx)))
        x1 = h.max(dim=-1)[0]
        idx = _original_knn(x1, self.k) if graphs is None else graphs[1]
        used.append(idx)
        x2 = self.conv4(self.conv3(_original_graph_feature(x1, idx))).max(dim=-1)[0]
        idx = _original_knn(x2, self.k) if graphs is None else graphs[2]
        used.append(idx)
        x3 = self.conv5(_original_graph_feature(x2, idx)).max(dim=-1)[0]
        h = self.conv6(torch.cat((x1, x2, x3), dim=1)).max(dim=-1, keepdim=True)[0]
        h = torch.cat((h.repeat(1, 1, n), x1, x2, x3), dim=1)
        return self.conv9(self.dp1(self.conv8(self.conv7(h)))), used


@pytest.fixture(scope="module")
def original_random():
    torch.manual_seed(0)
    net = OriginalDGCNNSemSeg().eval()
    _randomise(net, 3)
    state = {"module." + k: v.clone() for k, v in net.state_dict().items()}  # as DataParallel saves
    return net.double(), state  # float32 weights, exact in float64: compare in float64


def test_published_layout_has_89_tensors_and_maps_to_every_parameter(original_random):
    _, state = original_random
    assert len(state) == 89
    stripped = {k[len("module.") :]: v for k, v in state.items()}
    assert detect_format(stripped) == "dgcnn_s3dis"
    model, config = convert_dgcnn_state_dict(stripped)
    assert config == get_config("dgcnn_s3dis")
    assert model.num_parameters() == 983_552 == sum(
        v.numel() for k, v in stripped.items()
        if not k.startswith("bn") and ("conv" in k) and ("running" not in k)
        and ("num_batches" not in k)
    )  # fmt: skip


def test_converted_model_equals_the_original_forward(original_random):
    net, state = original_random
    stripped = {k[len("module.") :]: v for k, v in state.items()}
    model, _ = convert_dgcnn_state_dict(stripped)
    model = model.double()
    torch.manual_seed(1)
    x = torch.rand(2, 9, 64, dtype=torch.float64)  # channels-first, as the original takes it
    with torch.no_grad():
        expected, graphs = net(x)
        xt = x.transpose(1, 2).contiguous()
        ours_fixed = model.forward_head(model.forward_features(xt, graphs=graphs))
        ours, used = model.forward_features(xt, return_graphs=True)
        logits = model.forward_head(ours)
    torch.testing.assert_close(ours_fixed, expected.transpose(1, 2), rtol=1e-9, atol=1e-9)
    # float64, no ties: our kNN (first graph on channels 6:9) finds the same neighbour sets
    for a, b in zip(used, graphs, strict=True):
        assert torch.equal(a.sort(-1).values, b.sort(-1).values)
    torch.testing.assert_close(logits, expected.transpose(1, 2), rtol=1e-9, atol=1e-9)


def test_dgcnn_trains_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = create_model("dgcnn_s3dis", k=4, emb_channels=16, head_channels=(16, 8))
    assert isinstance(model, DGCNN)
    model.train()
    logits = model(torch.rand(2, 32, 9))
    assert logits.shape == (2, 32, 13)
    logits.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


# -------------------------------------------------------------------------- format detection
def _dgcnn_cls_state() -> dict[str, torch.Tensor]:
    """A state dict of dgcnn.pytorch's `DGCNN_cls` (ModelNet40), built here."""

    def bn(c, name):
        return {f"{name}.{leaf}": torch.ones(c) for leaf in ("weight", "bias", "running_mean",
                                                             "running_var")}  # fmt: skip

    s = {"conv1.0.weight": torch.zeros(64, 6, 1, 1), "conv2.0.weight": torch.zeros(64, 128, 1, 1),
         "conv3.0.weight": torch.zeros(128, 128, 1, 1), "conv4.0.weight": torch.zeros(256, 256, 1, 1),
         "conv5.0.weight": torch.zeros(1024, 512, 1), "linear1.weight": torch.zeros(512, 2048),
         "linear2.weight": torch.zeros(256, 512), "linear2.bias": torch.zeros(256),
         "linear3.weight": torch.zeros(40, 256), "linear3.bias": torch.zeros(40)}  # fmt: skip
    for i, c in enumerate((64, 64, 128, 256, 1024, 512, 256), start=1):
        s.update(bn(c, f"bn{i}"))
    return s


def test_format_detection_deepgcn_dgcnn_and_other_models(original_random):
    from tests.models.test_reference import to_original

    deepgcn = to_original(create_model("resgcn4_tiny"))
    assert detect_format(deepgcn) == "deep_gcns_torch"
    dgcnn = {k[len("module.") :]: v for k, v in original_random[1].items()}
    assert detect_format(dgcnn) == "dgcnn_s3dis"
    with pytest.raises(ConfigError, match=r"DGCNN classification model.*40 classes"):
        detect_format(_dgcnn_cls_state(), "cls.t7")
    scannet = {**dgcnn, "conv9.weight": torch.zeros(21, 256, 1)}
    with pytest.raises(ConfigError, match=r"with 21 classes \(ScanNet"):
        detect_format(scannet)
    partseg = {**dgcnn, "transform_net.conv1.0.weight": torch.zeros(64, 6, 1, 1)}
    with pytest.raises(ConfigError, match="part-segmentation"):
        detect_format(partseg)
    with pytest.raises(ConfigError, match=r"unknown architecture.*encoder\.weight"):
        detect_format({"encoder.weight": torch.zeros(2, 2)})


def test_missing_extra_and_inconsistent_keys_are_named(original_random):
    dgcnn = {k[len("module.") :]: v for k, v in original_random[1].items()}
    with pytest.raises(ConfigError, match=r"missing keys \['conv7.1.running_var'\]"):
        convert_dgcnn_state_dict({k: v for k, v in dgcnn.items() if k != "conv7.1.running_var"})
    with pytest.raises(ConfigError, match=r"unexpected keys \['conv10.weight'\]"):
        convert_dgcnn_state_dict({**dgcnn, "conv10.weight": torch.zeros(1)})
    with pytest.raises(ConfigError, match="bn2.weight differs from conv2.1.weight"):
        convert_dgcnn_state_dict({**dgcnn, "bn2.weight": dgcnn["bn2.weight"] + 1})
    with pytest.raises(ConfigError, match=r"'conv7.0.weight' has shape \[512, 1000, 1\]"):
        convert_dgcnn_state_dict({**dgcnn, "conv7.0.weight": torch.zeros(512, 1000, 1)})


def test_cli_bad_inputs_write_nothing(tmp_path, original_random, capsys):
    out = tmp_path / "out.pt"
    good = tmp_path / "model_5.t7"
    torch.save(original_random[1], good)
    data = good.read_bytes()
    cases = {
        "truncated.t7": data[: len(data) // 2],
        "text.t7": b"x y z r g b\n1 2 3 4 5 6\n",
    }
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
    torch.save({k: v for k, v in original_random[1].items() if "conv9" not in k},
               tmp_path / "no_classifier.t7")  # fmt: skip
    torch.save({**original_random[1], "module.extra.weight": torch.zeros(1)}, tmp_path / "extra.t7")
    torch.save(_dgcnn_cls_state(), tmp_path / "cls.t7")
    expected = {
        "truncated.t7": "cannot be read as a torch checkpoint",
        "text.t7": "cannot be read as a torch checkpoint",
        "no_classifier.t7": "no 'conv9.weight' classifier",
        "extra.t7": r"unexpected keys \['extra.weight'\]",
        "cls.t7": "DGCNN classification model",
    }
    for name, message in expected.items():
        assert cli_main(["convert", "--original", str(tmp_path / name), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert name in err and __import__("re").search(message, err), (name, err)
        assert not out.exists() and not list(tmp_path.glob("out.pt*"))
    # DeepGCN-only flags are refused for DGCNN, also before anything is written
    assert cli_main(["convert", "--original", str(good), "--out", str(out), "--k", "16"]) == 1
    assert "--k describe original deep_gcns_torch models" in capsys.readouterr().err
    assert not out.exists()


def test_converted_checkpoint_stores_its_input_recipe(tmp_path, original_random):
    from pointseg.recipe import checkpoint_recipe

    src = tmp_path / "model_5.t7"
    torch.save(original_random[1], src)
    result = convert_file(src, tmp_path / "dgcnn.pt")
    ckpt = load_checkpoint(result["path"])
    assert ckpt["model_config"]["kind"] == "dgcnn"
    recipe = checkpoint_recipe(ckpt)
    assert (recipe.block_size, recipe.num_point, recipe.centering) == (1.0, 4096, "sampled")
    assert recipe.room_normalisation == "max" and recipe.channels[6:] == ("x_room", "y_room",
                                                                          "z_room")  # fmt: skip
    model, _ = model_from_checkpoint(result["path"])
    for key, value in result["model"].state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    # a recipe pointseg cannot make: one clear error
    ckpt["meta"]["input"]["channels"] = ["x", "y", "z", "nx", "ny", "nz", "r", "g", "b"]
    with pytest.raises(ConfigError, match=r"needs input channels \['x', 'y', 'z', 'nx'"):
        checkpoint_recipe(ckpt, "ck.pt")


def test_dgcnn_config_round_trip_and_validation():
    c = DGCNNConfig()
    assert DGCNNConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="graph_channels"):
        c.replace(graph_channels=(6, 12))
    with pytest.raises(ConfigError, match="unknown DGCNN config keys"):
        DGCNNConfig.from_dict({**c.to_dict(), "blocks": 3})


# ---------------------------------------------------------------- the published weights (fixture)
@needs_fixture
def test_published_weights_reproduce_the_original_layer_by_layer_and_end_to_end():
    state, _ = load_original_state_dict(MODEL_T7)
    assert detect_format(state) == "dgcnn_s3dis"
    model, _ = convert_dgcnn_state_dict(state, str(MODEL_T7))
    r = check_dgcnn_layers(model, LAYERS)
    assert max(r["layers"]) <= 1e-5, r["layers"]
    assert r["emb"] <= 1e-5 and r["logits"] <= 1e-5
    assert min(r["graph_agreement"]) >= 0.999, r["graph_agreement"]
    assert r["prediction_agreement"] >= 0.999
    assert r["accuracy"] == pytest.approx(r["reference_accuracy"], abs=1e-3)
    assert r["reference_accuracy"] == pytest.approx(0.970, abs=1e-3)  # README of the fixture


@needs_fixture
def test_cli_convert_verify_writes_a_loadable_checkpoint(tmp_path, capsys):
    out = tmp_path / "dgcnn_s3dis_area5.pt"
    argv = ["convert", "--original", str(MODEL_T7), "--out", str(out), "--verify", str(LAYERS)]
    assert cli_main(argv) == 0
    text = capsys.readouterr().out
    assert "published DGCNN S3DIS model" in text and "verify OK" in text
    model, ckpt = model_from_checkpoint(out)
    assert isinstance(model, DGCNN) and ckpt["meta"]["input"]["centering"] == "sampled"
    # an impossible tolerance fails verification and writes nothing
    out2 = tmp_path / "strict.pt"
    argv = ["convert", "--original", str(MODEL_T7), "--out", str(out2), "--verify", str(LAYERS),
            "--tolerance", "1e-12"]  # fmt: skip
    assert cli_main(argv) == 1
    assert "nothing written" in capsys.readouterr().out and not out2.exists()


def test_blocks_sampled_centering_is_pointnets_rule():
    from pointseg.data.blocks import room_to_blocks

    rng = np.random.default_rng(0)
    xyz = rng.uniform(0, 3, (6000, 3))
    rgb = rng.integers(0, 255, (6000, 3))
    blocks = room_to_blocks(xyz, rgb, np.zeros(6000, np.int64), num_point=256, stride=1.0,
                            centering="sampled", cover_all=True, rng=0)  # fmt: skip
    # x, y of every sample start at −block_size / 2 exactly (min of the sample + 0.5 removed)
    np.testing.assert_allclose(blocks.data[..., :2].min(axis=1), -0.5, atol=1e-6)


def test_loading_an_unconverted_dgcnn_model_says_convert_it(tmp_path, original_random):
    path = tmp_path / "model_5.t7"
    torch.save(original_random[1], path)
    with pytest.raises(ConfigError, match="published DGCNN model.*pointseg convert"):
        load_checkpoint(path)


def test_view_predicts_with_the_checkpoints_recipe(tmp_path, original_random, monkeypatch):
    """`pointseg view <room> --checkpoint <converted>` feeds the model its stored recipe: PointNet's
    sampled centring (every sample's x, y start at exactly −0.5), the whole-room protocol of eval."""
    from pointseg.engine.evaluate import predict_room
    from visualize.sources import predict_with_checkpoint

    src = tmp_path / "model_5.t7"
    torch.save(original_random[1], src)
    path = convert_file(src, tmp_path / "dgcnn.pt")["path"]
    rng = np.random.default_rng(0)
    room = {
        # dense enough that columns hold > 4,096 points: samples then differ from their block
        "xyz": rng.uniform(0, 1.6, (12000, 3)).astype(np.float32),
        "rgb": rng.integers(0, 255, (12000, 3)).astype(np.uint8),
    }
    model, _ = model_from_checkpoint(path)
    kw = dict(num_classes=13, stride=1.0, num_point=4096)
    expected = predict_room(model, room["xyz"], room["rgb"], centering="sampled", **kw).pred
    seen = []
    forward = DGCNN.forward

    def spy(self, x):
        seen.append(x[..., :2].amin(dim=1))  # (B, 2) min of centred x, y per sample
        return forward(self, x)

    monkeypatch.setattr(DGCNN, "forward", spy)
    _, pred = predict_with_checkpoint(path, room, stride=1.0, progress=False, print_fn=None)
    np.testing.assert_array_equal(pred, expected)
    mins = torch.cat(seen)
    assert len(mins) > 4  # big columns were split into several samples
    torch.testing.assert_close(mins, torch.full_like(mins, -0.5), rtol=0, atol=1e-6)
