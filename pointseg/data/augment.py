"""Augmentation of point sets: the one module every point-cloud task uses, in training and in
evaluation alike.

- `scale_shift` / :class:`ShapeAugment` (ModelNet40; DESIGN §3 recipe, DGCNN's
  `translate_pointcloud`): per-axis random scale in [2/3, 3/2] and per-axis shift in [−0.2, 0.2]
  per shape (`ShapeAugment` can also shuffle the point order). Training
  (`pointseg.tasks.modelnet40`, `augment: true`) and test-time voting (`pointseg eval --votes`)
  call the same function, the former from the global RNG, the latter from a seeded generator.
- `rotate_z` / :class:`BlockAugment` (S3DIS blocks): rotation about z (what `augment: true` does
  for S3DIS training), isotropic scale and clipped jitter of the block-centred channels; all off
  by default, as in the paper.

Every function takes one sample `(P, C≥3)` or a batch `(B, P, C≥3)` (one draw per sample), an
optional `torch.Generator`, and returns an augmented copy; only the xyz channels 0:3 are changed
(the room-normalised channels 6:9 of a block, and normals, are left alone). Draws, per batch:
scale (B·3 numbers) then shift (B·3) for `scale_shift`; one angle per sample for `rotate_z`.
"""

from __future__ import annotations

import math

import torch


def _batched(points: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if points.dim() not in (2, 3) or points.shape[-1] < 3:
        raise ValueError(
            f"expected points (P, C>=3) or (B, P, C>=3), got shape {tuple(points.shape)}"
        )
    return (points[None], True) if points.dim() == 2 else (points, False)


def scale_shift(
    points: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    scale: tuple[float, float] | None = (2.0 / 3.0, 1.5),
    shift: float | None = 0.2,
) -> torch.Tensor:
    """Random anisotropic scale U(lo, hi) per axis and shift U(−shift, shift) per axis, one draw
    per shape (DGCNN): x[..., :3] · s + t. `scale` / `shift` None (or 0) leave that part out."""
    x, single = _batched(points)
    b = x.shape[0]
    xyz = x[..., :3]
    if scale is not None:
        s = torch.empty(b, 1, 3).uniform_(scale[0], scale[1], generator=generator)  # (B, 1, 3)
        xyz = xyz * s.to(x)
    if shift:
        t = torch.empty(b, 1, 3).uniform_(-shift, shift, generator=generator)  # (B, 1, 3)
        xyz = xyz + t.to(x)
    out = torch.cat([xyz, x[..., 3:]], dim=-1)
    return out[0] if single else out


def rotate_z(points: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random rotation about z of the x, y channels (0:2), one angle U(0, 2π) per sample."""
    x, single = _batched(points)
    theta = torch.rand(x.shape[0], generator=generator) * (2 * math.pi)  # (B,)
    c, s = torch.cos(theta)[:, None].to(x), torch.sin(theta)[:, None].to(x)  # (B, 1)
    out = x.clone()
    x0, x1 = x[..., 0], x[..., 1]
    out[..., 0], out[..., 1] = c * x0 - s * x1, s * x0 + c * x1
    return out[0] if single else out


class ShapeAugment:
    """DGCNN / DeepGCNs ModelNet augmentation: random per-axis scale and shift, shuffled points.

    Args:
        scale: (lo, hi) per-axis scale range ((2/3, 3/2) as published); None disables.
        shift: per-axis shift range [−shift, shift] (0.2); None or 0 disables.
        shuffle: randomly permute the points (the same permutation for every shape of a batch).

    Only channels 0:3 are changed (normals, if present, are left as they are).
    """

    def __init__(
        self,
        scale: tuple[float, float] | None = (2.0 / 3.0, 3.0 / 2.0),
        shift: float | None = 0.2,
        shuffle: bool = True,
    ) -> None:
        self.scale, self.shift, self.shuffle = scale, shift, shuffle

    def __call__(
        self, points: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """`points` (P, C≥3) or (B, P, C≥3) float32 → augmented copy."""
        points = scale_shift(points, generator, scale=self.scale, shift=self.shift)
        if self.shuffle:
            points = points[..., torch.randperm(points.shape[-2], generator=generator), :]
        return points

    def __repr__(self) -> str:
        return f"ShapeAugment(scale={self.scale}, shift={self.shift}, shuffle={self.shuffle})"


class BlockAugment:
    """Optional training augmentation of block samples (all off by default, as in the paper).

    Args:
        rotate_z: rotate the block-centred x, y channels (0:2) by a random angle about z.
            The room-normalised channels 6:9 are left alone (they must stay in [0, 1]).
        scale: (lo, hi) uniform random isotropic scale of channels 0:3.
        jitter: Gaussian noise sigma added to channels 0:3, clipped at 5 sigma.
    """

    def __init__(
        self,
        rotate_z: bool = False,
        scale: tuple[float, float] | None = None,
        jitter: float | None = None,
    ) -> None:
        if scale is not None and not (0 < scale[0] <= scale[1]):
            raise ValueError(f"scale must be (lo, hi) with 0 < lo <= hi, got {scale}")
        if jitter is not None and jitter < 0:
            raise ValueError(f"jitter must be >= 0, got {jitter}")
        self.rotate_z = rotate_z
        self.scale = scale
        self.jitter = jitter

    @property
    def active(self) -> bool:
        return bool(self.rotate_z or self.scale is not None or self.jitter)

    def __call__(
        self, points: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """`points` (P, C≥3) or (B, P, C≥3) float32 → augmented copy (or `points` itself when
        inactive)."""
        if not self.active:
            return points
        if self.rotate_z:
            points = rotate_z(points, generator)
        x, single = _batched(points)
        if self.scale is not None or self.jitter:
            x = x.clone()
        if self.scale is not None:
            lo, hi = self.scale
            s = lo + (hi - lo) * torch.rand(x.shape[0], 1, 1, generator=generator)  # (B, 1, 1)
            x[..., 0:3] *= s.to(x)
        if self.jitter:
            noise = torch.randn(*x.shape[:-1], 3, generator=generator).to(x)  # (B, P, 3)
            x[..., 0:3] += (noise * self.jitter).clamp(-5 * self.jitter, 5 * self.jitter)
        return x[0] if single else x

    def __repr__(self) -> str:
        return f"BlockAugment(rotate_z={self.rotate_z}, scale={self.scale}, jitter={self.jitter})"


__all__ = ["BlockAugment", "ShapeAugment", "rotate_z", "scale_shift"]
