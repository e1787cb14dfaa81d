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


# ------------------------------------------------------------------ one module, every caller
def test_batches_get_one_draw_per_sample_and_only_xyz_changes():
    from pointseg.data.augment import rotate_z, scale_shift

    x = torch.randn(5, 32, 9)
    a = scale_shift(x, torch.Generator().manual_seed(0))
    for b in range(5):  # per-shape affine map of xyz
        s = (a[b, 1, :3] - a[b, 0, :3]) / (x[b, 1, :3] - x[b, 0, :3])
        torch.testing.assert_close(a[b, :, :3], x[b, :, :3] * s + (a[b, 0, :3] - x[b, 0, :3] * s))
    torch.testing.assert_close(a[..., 3:], x[..., 3:])
    r = rotate_z(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(r[..., :2].norm(dim=-1), x[..., :2].norm(dim=-1))
    torch.testing.assert_close(r[..., 2:], x[..., 2:])
    angles = torch.atan2(r[:, 0, 1], r[:, 0, 0]) - torch.atan2(x[:, 0, 1], x[:, 0, 0])
    assert len({round(float(torch.remainder(t, 2 * torch.pi)), 4) for t in angles}) == 5
    # One sample == a batch of one (same draws).
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(scale_shift(x[0], g1), scale_shift(x[:1], g2)[0])
    b = BlockAugment(rotate_z=True, scale=(0.9, 1.1), jitter=0.01)(x)
    assert b.shape == x.shape and torch.equal(b[..., 3:], x[..., 3:])


def test_training_and_voting_use_the_same_augmentation():
    """ModelNet training draws `scale_shift` from the global RNG (bit-identical to the trainer's
    former inline recipe); `pointseg eval --votes` draws the same function from a generator;
    S3DIS training rotates with `rotate_z`."""
    from types import SimpleNamespace

    from pointseg.data.augment import rotate_z, scale_shift
    from pointseg.engine import evaluate as E
    from pointseg.tasks import get_task

    x, y = torch.randn(4, 64, 3), torch.zeros(4, 1, dtype=torch.long)
    cfg = SimpleNamespace(augment=True, num_points=None)
    torch.manual_seed(7)
    got, _ = get_task("modelnet40").prepare(x, y, cfg)
    torch.manual_seed(7)
    scale = torch.empty(4, 1, 3).uniform_(2.0 / 3.0, 1.5)  # the former Trainer._prepare_batch
    shift = torch.empty(4, 1, 3).uniform_(-0.2, 0.2)
    assert torch.equal(got, torch.cat([x[..., :3] * scale + shift, x[..., 3:]], dim=-1))
    torch.manual_seed(7)
    assert torch.equal(got, scale_shift(x))
    assert E.scale_shift is scale_shift
    blocks = torch.randn(2, 16, 9)
    torch.manual_seed(8)
    rot, _ = get_task("s3dis").prepare(blocks, torch.zeros(2, 16, dtype=torch.long), cfg)
    torch.manual_seed(8)
    assert torch.equal(rot, rotate_z(blocks))
