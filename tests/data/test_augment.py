"""pointseg.data.augment: ShapeAugment (ModelNet40) and BlockAugment (S3DIS blocks)."""

from __future__ import annotations

import torch

from pointseg.data.augment import BlockAugment, ShapeAugment


def test_shape_augment():
    x = torch.randn(256, 3)
    g = torch.Generator().manual_seed(0)
    a = ShapeAugment(shuffle=False)(x, generator=g)
    # per-axis affine map: a = x * s + t with s in [2/3, 3/2], t in [-0.2, 0.2]
    s = (a[1] - a[0]) / (x[1] - x[0])
    t = a[0] - x[0] * s
    torch.testing.assert_close(a, x * s + t)
    assert ((s >= 2 / 3 - 1e-5) & (s <= 1.5 + 1e-5)).all() and (t.abs() <= 0.2 + 1e-5).all()
    sh = ShapeAugment(scale=None, shift=None)(x, generator=g)
    assert not torch.equal(sh, x)
    torch.testing.assert_close(sh[sh[:, 0].argsort()], x[x[:, 0].argsort()])  # a permutation


def test_block_augment():
    x = torch.randn(64, 9)
    assert BlockAugment()(x) is x  # off by default: identity
    g = torch.Generator().manual_seed(0)
    r = BlockAugment(rotate_z=True)(x, generator=g)
    torch.testing.assert_close(r[:, :2].norm(dim=1), x[:, :2].norm(dim=1))
    torch.testing.assert_close(r[:, 2:], x[:, 2:])  # z, rgb, normalised xyz untouched
    assert not torch.allclose(r[:, :2], x[:, :2])
    s = BlockAugment(scale=(0.8, 1.2))(x, generator=g)
    ratio = s[:, :3] / x[:, :3]
    assert torch.allclose(ratio, ratio[0, 0]) and 0.8 <= ratio[0, 0] <= 1.2
    j = BlockAugment(jitter=0.01)(x, generator=g)
    assert 0 < (j[:, :3] - x[:, :3]).abs().max() <= 0.05 + 1e-6
    torch.testing.assert_close(j[:, 3:], x[:, 3:])


def test_old_import_paths_still_work():
    from pointseg.data import BlockAugment as B1
    from pointseg.data import ShapeAugment as S1
    from pointseg.data.blocks import BlockAugment as B2
    from pointseg.data.modelnet import ShapeAugment as S2

    assert B1 is B2 is BlockAugment and S1 is S2 is ShapeAugment
