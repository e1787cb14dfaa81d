"""Very deep DeepGCN variants: checkpointed ResGCN == plain ResGCN (outputs, gradients, BatchNorm
updated once), RevGCN model gradients == ordinary autograd, weight tying, config errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from pointseg.errors import ConfigError
from pointseg.models import ModelConfig, create_model, get_config


def _step(model, x, target, seed: int):
    torch.manual_seed(seed)
    logits = model(x)
    F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1)).backward()
    return logits


def _data(model, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c = model.config
    x = torch.rand(2, 32, c.in_channels, generator=g, dtype=torch.float64)
    return x, torch.randint(0, c.num_classes, (2, 32), generator=g)


def _same(a, b, tol=1e-10):
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=tol, atol=tol, msg=name)
    for (name, u), (_, v) in zip(a.named_buffers(), b.named_buffers(), strict=True):
        assert torch.equal(u, v), name


def test_checkpointed_resgcn_equals_plain_resgcn_and_updates_batchnorm_once():
    torch.manual_seed(0)
    ckpt = create_model("resgcn4_tiny_ckpt", epsilon=0.5).double().train()
    plain = create_model("resgcn4_tiny", epsilon=0.5).double().train()
    plain.load_state_dict(ckpt.state_dict())
    x, t = _data(ckpt)
    a, b = _step(ckpt, x, t, 3), _step(plain, x, t, 3)
    assert torch.equal(a, b)
    _same(ckpt, plain)  # includes num_batches_tracked == 1 and the running statistics
    assert int(ckpt.blocks[0].conv.norm.num_batches_tracked) == 1


@pytest.mark.parametrize("name", ["revgcn4_tiny", "revgcn4_tiny_wt"])
def test_rev_model_gradients_equal_ordinary_autograd(name):
    torch.manual_seed(1)
    rev = create_model(name, epsilon=0.5).double().train()
    ref = copy.deepcopy(rev)
    ref.rev.memory_efficient = False
    x, t = _data(rev, 1)
    a, b = _step(rev, x, t, 4), _step(ref, x, t, 4)
    assert torch.equal(a, b)
    _same(rev, ref)
    assert rev.rev.graph_mismatches == 0


def test_weight_tied_parameter_count_does_not_depend_on_depth():
    counts = {L: create_model("revgcn4_tiny_wt", num_blocks=L).num_parameters() for L in (3, 8, 30)}
    assert len(set(counts.values())) == 1, counts
    untied = {L: create_model("revgcn4_tiny", num_blocks=L).num_parameters() for L in (3, 8)}
    assert untied[8] > untied[3]


def test_rev_group_convs_start_different_and_presets_fuse_two_layers():
    model = create_model("revgcn4_tiny")
    block = model.rev.blocks[0]
    assert not torch.equal(block.fns[0].conv.lin.weight, block.fns[1].conv.lin.weight)
    c = get_config("revgcn1001")
    assert c.feature_channels == 128 and c.min_points == 16 * 27
    assert [c.block_dilation(i) for i in (1, 27, 28, 1000)] == [1, 27, 1, 1000 % 27 or 27]


def test_deep_config_errors():
    with pytest.raises(ConfigError, match="divisible by groups"):
        ModelConfig(block="rev", channels=10, groups=4)
    with pytest.raises(ConfigError, match="groups must be an int >= 2"):
        ModelConfig(block="rev", groups=1)
    with pytest.raises(ConfigError, match="num_blocks must be 2"):
        ModelConfig(block="deq", num_blocks=5)
    with pytest.raises(ConfigError, match="already recomputes"):
        ModelConfig(block="rev", checkpoint=True)
    with pytest.raises(ConfigError, match="weight_tied needs block=rev"):
        ModelConfig(weight_tied=True)
