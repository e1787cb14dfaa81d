"""Training augmentation of point sets: one module for every point-cloud task.

- :class:`ShapeAugment` (ModelNet40; DESIGN §3 recipe, DGCNN's `translate_pointcloud`): per-axis
  random scale in [2/3, 3/2], per-axis shift in [−0.2, 0.2], and a random point order.
- :class:`BlockAugment` (S3DIS blocks): optional rotation about z, isotropic scale and clipped
  jitter of the block-centred channels; all off by default, as in the paper.

Both take `(P, C≥3)` float32 tensors and an optional `torch.Generator`, and return an augmented
copy; only the xyz channels 0:3 are changed (the room-normalised channels 6:9 of a block, and
normals, are left alone).
"""

from __future__ import annotations

import math

import torch


class ShapeAugment:
    """DGCNN / DeepGCNs ModelNet augmentation: random per-axis scale and shift, shuffled points.

    Args:
        scale: (lo, hi) per-axis scale range ((2/3, 3/2) as published); None disables.
        shift: per-axis shift range [−shift, shift] (0.2); None or 0 disables.
        shuffle: randomly permute the points.

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
        """`points` (P, C≥3) float32 → augmented copy."""
        points = points.clone()
        if self.scale is not None:
            lo, hi = self.scale
            points[:, 0:3] *= lo + (hi - lo) * torch.rand(3, generator=generator)
        if self.shift:
            points[:, 0:3] += (2 * torch.rand(3, generator=generator) - 1) * self.shift
        if self.shuffle:
            points = points[torch.randperm(points.shape[0], generator=generator)]
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
        """`points` (P, C≥3) float32 → augmented copy (or `points` itself when inactive)."""
        if not self.active:
            return points
        points = points.clone()
        if self.rotate_z:
            theta = float(torch.rand((), generator=generator)) * 2 * math.pi
            c, s = math.cos(theta), math.sin(theta)
            rot = torch.tensor([[c, -s], [s, c]], dtype=points.dtype)  # (2, 2)
            points[:, 0:2] = points[:, 0:2] @ rot.T
        if self.scale is not None:
            lo, hi = self.scale
            points[:, 0:3] *= lo + (hi - lo) * float(torch.rand((), generator=generator))
        if self.jitter:
            noise = torch.randn(points.shape[0], 3, generator=generator, dtype=points.dtype)
            points[:, 0:3] += (noise * self.jitter).clamp(-5 * self.jitter, 5 * self.jitter)
        return points

    def __repr__(self) -> str:
        return f"BlockAugment(rotate_z={self.rotate_z}, scale={self.scale}, jitter={self.jitter})"
