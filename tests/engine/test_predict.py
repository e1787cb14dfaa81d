"""Streaming whole-cloud inference (pointseg.engine.predict) == the non-streaming whole-room path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pointseg.data.blocks import nearest_covered_index, room_to_blocks
from pointseg.engine import evaluate as E
from pointseg.engine.predict import predict_cloud

C = 13


class RelativeModel(nn.Module):
    """Logits from block-centred x, y, z and the normalised channels: every block gives a point
    different probabilities, so voting, channel frames and the whole-cloud extent all show."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, 9) -> (B, N, C)
        w = torch.linspace(-3, 3, C)
        return x[..., 0:1] * w + x[..., 1:2] * w.flip(0) + x[..., 2:3] * 0.1 + x[..., 6:7] * w


def reference_predict_room(model, xyz, rgb, *, num_classes, num_point, block_size, stride,
                           min_points, batch_size, seed):  # fmt: skip
    """The non-streaming whole-room path as it was before streaming: every block of the room
    at once (`room_to_blocks`), batched inference, voting, one kd-tree for unscored points."""
    blocks = room_to_blocks(
        xyz, rgb, np.zeros(len(xyz), np.uint8), block_size=block_size, stride=stride,
        num_point=num_point, min_points=min_points, rng=np.random.default_rng(seed),
        cover_all=True,
    )  # fmt: skip
    n = len(xyz)
    prob = torch.zeros((n, num_classes))
    votes = torch.zeros(n, dtype=torch.int32)
    with torch.no_grad():
        for s in range(0, len(blocks), batch_size):
            p = torch.softmax(model(torch.from_numpy(blocks.data[s : s + batch_size])), -1)
            idx = torch.from_numpy(blocks.index[s : s + batch_size]).reshape(-1)
            prob.index_add_(0, idx, p.reshape(-1, num_classes))
            votes.index_add_(0, idx, torch.ones_like(idx, dtype=torch.int32))
    scored = votes > 0
    prob[scored] /= votes[scored, None].float()
    prob = prob.numpy()
    if (~scored).any():
        prob = prob[nearest_covered_index(xyz, scored.numpy())]
    return prob, votes.numpy(), len(blocks)


def _scan(seed=0, n=12000):
    """A 9 m × 6 m floor with furniture-height clutter and three far islands (dropped blocks)
    lying in different tiles."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform([0, 0, 0], [9.0, 6.0, 2.5], size=(n, 3))
    islands = [rng.uniform(c, np.add(c, 0.2), size=(15, 3)) for c in
               ([11.0, 1.0, 1.0], [4.0, 8.5, 0.5], [11.5, 8.0, 2.0])]  # fmt: skip
    xyz = np.concatenate([xyz, *islands]).astype(np.float32) + np.float32([100.0, -40.0, 3.0])
    rgb = rng.integers(0, 256, size=(len(xyz), 3), dtype=np.uint8)
    return xyz, rgb


@pytest.mark.parametrize("stride,tile_size,workers", [(0.5, 2.0, 0), (1.0, 3.0, 2), (0.5, None, 1)])
def test_streaming_equals_non_streaming_whole_room(stride, tile_size, workers):
    xyz, rgb = _scan()
    kw = dict(num_classes=C, num_point=128, block_size=1.0, stride=stride, min_points=40)
    ref_prob, ref_votes, ref_blocks = reference_predict_room(
        RelativeModel(), xyz, rgb, batch_size=8, seed=3, **kw
    )
    res = predict_cloud(
        RelativeModel(), xyz, rgb, batch_size=5, seed=3, tile_size=tile_size, workers=workers, **kw
    )
    if tile_size is not None:
        assert res.num_tiles > 4
    assert res.num_blocks == ref_blocks
    np.testing.assert_array_equal(res.votes, ref_votes)
    assert res.num_unscored == 45 == int((ref_votes == 0).sum())
    np.testing.assert_allclose(res.prob, ref_prob, atol=2e-6)  # only the summation order differs
    top2 = np.sort(ref_prob, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-5
    np.testing.assert_array_equal(res.pred[clear], ref_prob.argmax(1)[clear])
    np.testing.assert_allclose(res.confidence, ref_prob.max(1), atol=2e-6)
    assert ref_votes.max() >= (4 if stride == 0.5 else 1)


def test_streaming_real_model_equals_whole_room():
    """A real (tiny, random) DeepGCN in eval mode: tiled streaming == the non-streaming path."""
    from pointseg.models import DeepGCN, ModelConfig

    torch.manual_seed(0)
    model = DeepGCN(ModelConfig(channels=8, num_blocks=3, k=4, fusion_channels=16,
                                head_channels=(16,), stochastic=False)).eval()  # fmt: skip
    xyz, rgb = _scan(1, n=4000)
    kw = dict(num_classes=C, num_point=64, block_size=1.0, stride=1.0, min_points=20, seed=0)
    ref_prob, ref_votes, _ = reference_predict_room(model, xyz, rgb, batch_size=4, **kw)
    res = predict_cloud(model, xyz, rgb, batch_size=3, tile_size=2.0, **kw)
    np.testing.assert_array_equal(res.votes, ref_votes)
    np.testing.assert_allclose(res.prob, ref_prob, atol=1e-5)


def test_predict_room_is_the_streaming_path():
    xyz, rgb = _scan(2, n=5000)
    kw = dict(num_classes=C, num_point=128, stride=0.5, min_points=40, seed=4, batch_size=6)
    a = E.predict_room(RelativeModel(), xyz, rgb, tile_size=2.0, **kw)
    b = E.predict_room(RelativeModel(), xyz, rgb, tile_size=None, **kw)
    assert a.pred.dtype == np.int64 and a.prob.shape == (len(xyz), C)
    np.testing.assert_array_equal(a.votes, b.votes)
    np.testing.assert_allclose(a.prob, b.prob, atol=2e-6)


def test_progress_counts_every_point_once():
    xyz, rgb = _scan(3, n=3000)
    seen = []
    predict_cloud(RelativeModel(), xyz, rgb, num_classes=C, num_point=64, min_points=20,
                  tile_size=2.0, on_points=seen.append)  # fmt: skip
    assert sum(seen) == len(xyz) and len(seen) > 1


def test_model_with_wrong_output_is_refused():
    class Classifier(nn.Module):
        def forward(self, x):
            return x[:, 0, :1].repeat(1, 40)  # (B, 40): a classification head

    xyz, rgb = _scan(4, n=500)
    with pytest.raises(Exception, match="segmentation checkpoint"):
        predict_cloud(Classifier(), xyz, rgb, num_classes=C, num_point=64, min_points=20)


@pytest.mark.slow
def test_bounded_memory_on_a_generated_scan():
    """`benchmarks/predict.py --huge`: peak RSS of the streaming path on a generated 2 M-point
    scan stays under the budget given to `--max-memory`'s planner (the README's 20 M-point run
    uses the same code with --huge 20000000 --bound 2.5GB)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "predict.py"), "--huge", "2000000",
         "--bound", "700MB", "--model", "pointwise"],
        capture_output=True, text=True, env={**__import__("os").environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["within_bound"] and result["peak_rss_mb"] <= 700
