"""The bf16-candidate exact kNN (pointseg.graph.bf16 + the select_rerank kernel).

Exactness is checked three ways: against a float64 brute force (distances of the selected
neighbours equal the k smallest), against the fp32 path (neighbour sets agree on >= 99.9% of
slots), and inside the kernel: rows accepted by the per-row proof equal the same rows computed by
the kernel's own full fp32 fallback (a bound too large to prove anything forces it), index for
index. The hard cases of an approximation: duplicated points and exact ties, a large common
offset, k·d close to N, N not a multiple of the 128-row block, and real room coordinates.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

from pointseg.graph import dilated_knn, knn, knn_ranks
from pointseg.graph.bf16 import bf16_knn_torch, native_bf16_cpu, score_error_bound

K = importlib.import_module("pointseg.graph.knn")
DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
KERNEL = pytest.mark.skipif(
    not K.HAVE_RERANK,
    reason="pointseg._native._select lacks select_rerank: rebuild with "
    "`python setup.py build_ext --inplace`",
)


def sq_dist64(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return (x.unsqueeze(2) - x.unsqueeze(1)).pow(2).sum(-1)  # (B, N, N)


def assert_exact_by_distance(x: torch.Tensor, idx: torch.Tensor, ranks: torch.Tensor) -> None:
    """The selected ranks hold the float64 distances at those ranks (up to fp32 rounding)."""
    d = sq_dist64(x)
    got = d.gather(-1, idx)
    want = d.sort(dim=-1).values[..., ranks]
    xc = x.double() - x.double().mean(1, keepdim=True)
    tol = 16 * 2.0**-24 * float(xc.pow(2).sum(-1).max())
    torch.testing.assert_close(got, want, rtol=0, atol=tol)
    assert torch.equal(idx[..., 0], torch.arange(x.shape[1]).expand(x.shape[0], -1))


def slot_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return float((a2.unsqueeze(-1) == b2.unsqueeze(1)).any(-1).double().mean())


def centred(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xc = (x - x.mean(dim=1, keepdim=True)).contiguous()
    return xc, xc.pow(2).sum(-1).unsqueeze(1)


@pytest.mark.parametrize("dilation", [1, 3, 16])
@pytest.mark.parametrize("n", [1024, 1100])  # 1100: not a multiple of the 128-row block
def test_bf16_path_exact_on_random_features(n, dilation):
    torch.manual_seed(n + dilation)
    x = torch.randn(2, n, 32)
    ranks = torch.arange(0, 16 * dilation, dilation)
    got = knn_ranks(x, ranks, method="bf16")
    assert_exact_by_distance(x, got, ranks)
    ref = knn_ranks(x, ranks, method="topk" if not K.HAVE_NATIVE else "native")
    assert slot_agreement(got, ref) >= 0.999


@KERNEL
def test_duplicates_and_exact_ties():
    torch.manual_seed(1)
    x = torch.randn(2, 1024, 24)
    x[:, 512:] = x[:, :512]  # every point has a twin at distance 0: ties at every rank
    x[:, 100:140] = x[:, 100:101]  # and a cluster of 40 identical points
    ranks = torch.arange(0, 64, 4)
    got = knn_ranks(x, ranks, method="bf16")
    assert_exact_by_distance(x, got, ranks)
    # ties go to the lower index, as on the fp32 path: the twin of i < 512 is i + 512
    nn1 = knn(x, 2, method="bf16")[..., 1]
    i = torch.arange(1024)
    twin = torch.where(i < 512, i + 512, i - 512)
    plain = (i < 100) | (i >= 140)
    plain &= ~(((i - 512) >= 100) & ((i - 512) < 140))
    assert torch.equal(nn1[:, plain], twin[plain].expand(2, -1))
    # the 40 identical points: each one's nearest other point is the lowest index of the rest
    assert int(nn1[0, 100]) == 101 and int(nn1[0, 139]) == 100


def test_large_common_offset():
    torch.manual_seed(2)
    x = torch.randn(1, 1024, 32) + 1000.0  # ‖x‖² ≈ 3e7 ≫ neighbour gaps; centring removes it
    ranks = torch.arange(0, 80, 5)
    got = knn_ranks(x, ranks, method="bf16")
    assert_exact_by_distance(x, got, ranks)
    # the same points moved to the origin (x − 1000 is exact here): the same graph but for
    # the last-bit differences of the centring
    assert slot_agreement(got, knn_ranks(x - 1000.0, ranks, method="bf16")) >= 0.999


@pytest.mark.parametrize("kmax", [256, 1000, 1021])  # 256 = N/4 (the kernel), then torch path
def test_kd_close_to_n(kmax):
    torch.manual_seed(3)
    x = torch.randn(1, 1024, 16)
    ranks = torch.unique(
        torch.cat([torch.arange(0, kmax, max(1, kmax // 16)), torch.tensor([kmax - 1])])
    )
    got = knn_ranks(x, ranks, method="bf16")
    assert_exact_by_distance(x, got, ranks)


@KERNEL
@pytest.mark.parametrize("feat", ["gauss", "clusters", "xyz"])
def test_kernel_proof_equals_its_fp32_fallback(feat):
    # Rows accepted by the proof must be exactly what the full fp32 row gives (the same ŝ
    # arithmetic): an error bound too large to prove anything sends every row to the fallback.
    from pointseg._native import _select

    torch.manual_seed(4)
    n = 1024
    if feat == "gauss":
        x = torch.randn(1, n, 32)
    elif feat == "clusters":
        cent = torch.randn(16, 48) * 4
        x = (cent[torch.randint(0, 16, (n,))] + 0.3 * torch.randn(n, 48)).unsqueeze(0)
    else:  # 3 channels: the bf16 band is wide, many rows cannot be proven
        x = torch.rand(1, n, 3)
    xc, sq = centred(x)
    eb = score_error_bound(xc, sq[:, 0])
    d = (xc[0].bfloat16() @ xc[0].bfloat16().t()).contiguous()  # (N, N) bf16 dots
    ranks = np.arange(0, 96, 6, dtype=np.int64)
    out = np.empty((n, len(ranks)), dtype=np.int64)
    args = (d.view(torch.int16).numpy(), xc[0].numpy(), sq[0, 0].numpy(), eb.norm[0].numpy(),
            eb.rho[0].numpy())  # fmt: skip
    rest = (eb.ep[0].numpy(), eb.eq[0].numpy(), eb.eb, 0, ranks)
    fb, cand, _ = _select.select_rerank(*args, eb.ea[0].numpy(), *rest, out, 1.0)
    forced = np.empty_like(out)
    fb2, _, _ = _select.select_rerank(*args, np.full(n, 1e30), *rest, forced, 1.0)
    assert fb2 == n
    np.testing.assert_array_equal(out, forced)
    if feat != "xyz":
        assert fb == 0 and cand / n < 0.4 * n  # the proof holds for every row, on a small set
    assert_exact_by_distance(x, torch.from_numpy(out).unsqueeze(0), torch.from_numpy(ranks))


@pytest.mark.parametrize("offset", [0.0, 50.0])
def test_error_bound_holds(offset):
    # |s̃ − ŝ| <= the per-pair bound for every pair, with room to spare (it is a worst case)
    torch.manual_seed(5)
    x = torch.randn(2, 512, 40) * torch.rand(1, 1, 40) * 3 + offset
    xc, sq = centred(x)
    eb = score_error_bound(xc, sq[:, 0])
    d = torch.bmm(xc.bfloat16(), xc.bfloat16().transpose(1, 2)).float()
    s_approx = sq - 2 * d
    s_exact = sq.double() - 2 * torch.bmm(xc.double(), xc.double().transpose(1, 2))
    err = (s_approx.double() - s_exact).abs()
    bound = eb.pair(d)
    assert bool((err <= bound).all())
    assert float((err / bound).max()) < 0.8


@KERNEL
def test_torch_path_equals_kernel():
    torch.manual_seed(6)
    x = torch.randn(2, 1024, 32)
    ranks = torch.arange(0, 128, 8)
    a = knn_ranks(x, ranks, method="bf16")  # the kernel
    xc, sq = centred(x)
    stats: dict = {}
    b = bf16_knn_torch(xc, sq, 128, stats=stats)[..., ranks]
    assert slot_agreement(a, b) >= 0.9999
    assert_exact_by_distance(x, b, ranks)


@KERNEL
def test_unprovable_rows_fall_back_and_stay_exact():
    # a tight cluster and a few far outliers: the bf16 error band (∝ max‖x‖) is far wider than
    # the gaps inside the cluster, so most rows cannot be proven on a small candidate set
    torch.manual_seed(7)
    x = torch.rand(2, 1024, 16) * 1e-3
    x[:, :8] += 100.0 * torch.randn(2, 8, 16)
    ranks = torch.arange(0, 32, 2)
    got = knn_ranks(x, ranks, method="bf16")
    assert K.last_bf16_stats["fallback"] > 1000
    assert_exact_by_distance(x, got, ranks)


def test_real_room_features():
    # Real S3DIS points (mm-quantised xyz: exact ties) lifted to 32 channels by a fixed map.
    room = DATA / "s3dis_raw" / "Area_1" / "hallway_1" / "Annotations"
    files = sorted(room.glob("*.txt")) if room.is_dir() else []
    if not files:
        pytest.skip(f"real S3DIS sample not found under {room}")
    pts = np.concatenate([np.loadtxt(f, usecols=range(6), max_rows=800) for f in files[:4]])
    rng = np.random.default_rng(0)
    sel = rng.choice(len(pts), size=1024, replace=False)
    p = torch.from_numpy(pts[sel]).float()
    p[:, 3:] /= 255.0
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 32, generator=g)
    feats = torch.relu(p @ w).unsqueeze(0)  # (1, 1024, 32)
    for x, ranks in ((feats, torch.arange(0, 64, 4)), (p[:, :3].unsqueeze(0), torch.arange(16))):
        got = knn_ranks(x, ranks, method="bf16")
        assert_exact_by_distance(x, got, ranks)
        ref = knn_ranks(x, ranks, method="native" if K.HAVE_NATIVE else "topk")
        assert slot_agreement(got, ref) >= 0.999


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_runs_on_meta_and_cpu_in_each_dtype(dtype):
    # meta: shapes only (device-agnostic code, nothing data-dependent on the way)
    xm = torch.empty(2, 1024, 32, dtype=dtype, device="meta")
    for method in ("bf16", "auto"):
        idx = knn_ranks(xm, torch.arange(0, 32, 2), method=method)
        assert idx.shape == (2, 1024, 16) and idx.dtype == torch.long and idx.device.type == "meta"
    xc = torch.empty(2, 1024, 32, device="meta")
    out = bf16_knn_torch(xc, torch.empty(2, 1, 1024, device="meta"), 40)
    assert out.shape == (2, 1024, 40)
    # CPU: each dtype runs and is exact for its float32 (or float64) values
    torch.manual_seed(8)
    x = torch.randn(2, 1024, 32).to(dtype)
    got = knn(x, 24, method="bf16")
    assert got.shape == (2, 1024, 24)
    assert_exact_by_distance(x.double(), got, torch.arange(24))


def test_mode_selection_and_context():
    x = torch.randn(1, 4096, 64)
    assert K.get_knn_mode() in K.KNN_MODES
    with K.knn_mode("exact32"):
        assert not K.bf16_selected(x, 432)
        assert K.bf16_selected(x, 432, "bf16")  # an explicit method wins over the mode
    with K.knn_mode("bf16"):
        assert K.bf16_selected(torch.randn(1, 64, 3), 16)
    with K.knn_mode("auto"):
        assert not K.bf16_selected(torch.randn(1, 4096, 3), 128)  # xyz: the band is too wide
        assert not K.bf16_selected(x, 16)  # k·d = 16: measured no faster
        assert not K.bf16_selected(x.double(), 16)  # float64 asks for float64 ranking
        want = K.AUTO_BF16 and K.HAVE_RERANK and native_bf16_cpu() and not K._native_disabled()
        assert K.bf16_selected(x, 432) == want
    with pytest.raises(ValueError, match="knn mode must be one of"):
        K.set_knn_mode("fast")


def test_dilated_knn_uses_the_mode():
    torch.manual_seed(9)
    x = torch.randn(2, 1024, 32)
    with K.knn_mode("bf16"):
        a = dilated_knn(x, 16, 4)
        assert K.last_bf16_stats  # the bf16 path ran
    with K.knn_mode("exact32"):
        K.last_bf16_stats.clear()
        b = dilated_knn(x, 16, 4)
        assert not K.last_bf16_stats
    assert slot_agreement(a, b) >= 0.999


def test_flag_choices_match_modes_and_force_beats_config(monkeypatch):
    import argparse

    from pointseg.commands._knn import KNN_CHOICES, add_knn_argument, apply_knn_argument
    from pointseg.models import DeepGCN, get_config

    assert KNN_CHOICES == K.KNN_MODES
    p = argparse.ArgumentParser()
    add_knn_argument(p)
    assert p.parse_args([]).knn is None
    with pytest.raises(SystemExit):
        p.parse_args(["--knn", "fast"])
    monkeypatch.setattr(K, "_mode", "auto")
    monkeypatch.setattr(K, "_forced", False)
    seen = []
    real = K.bf16_selected

    def spy(x, kmax, method="auto"):
        seen.append(K.get_knn_mode())
        return real(x, kmax, method)

    monkeypatch.setattr(K, "bf16_selected", spy)
    cfg = get_config("resgcn4_tiny_static").replace(knn="exact32")
    model = DeepGCN(cfg).eval()
    x = torch.rand(1, 64, cfg.in_channels)
    with torch.no_grad():
        model(x)
    assert seen and set(seen) == {"exact32"}  # the config pins the path inside forward
    assert K.get_knn_mode() == "auto"  # and only there
    seen.clear()
    apply_knn_argument(p.parse_args(["--knn", "bf16"]))  # a flag wins over the config
    with torch.no_grad():
        model(x)
    assert set(seen) == {"bf16"}
