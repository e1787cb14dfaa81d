"""Dilated (and stochastically dilated) kNN graphs, DeepGCNs (Li et al., ICCV'19, §3.3).

A dilated kNN graph with dilation ``d`` takes the ``k·d`` nearest neighbours of each point
(self included, nearest first) and keeps ranks ``0, d, 2d, …, (k−1)d``: the receptive field
grows with depth while every point keeps ``k`` neighbours.

Stochastic dilation (training only): with probability ``epsilon`` per call, keep ``k`` random
ranks of the ``k·d`` instead (``randperm(k·d)[:k]``, sorted ascending, as in the original
deep_gcns_torch ``DenseDilated``; rank 0 is not forced). The ranks come from
:func:`select_ranks`, so a caller (e.g. a reversible network) can draw them once from a
``torch.Generator`` and rebuild the identical graph later with :func:`knn_ranks`.
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor, nn

from pointseg.graph.knn import knn_ranks

__all__ = ["select_ranks", "dilated_knn", "dilated_from_sorted", "DilatedKnnGraph"]


def _check_kd(k: int, dilation: int, name: str) -> None:
    for key, val in (("k", k), ("dilation", dilation)):
        if isinstance(val, bool) or not isinstance(val, numbers.Integral) or val < 1:
            raise ValueError(f"{name}: {key} must be an int >= 1; got {val!r}")


def select_ranks(
    k: int,
    dilation: int = 1,
    *,
    stochastic: bool = False,
    epsilon: float = 0.2,
    training: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Neighbour ranks (k,) int64 to keep out of the ``k·dilation`` nearest.

    Deterministic: ``0, d, …, (k−1)d``. If ``stochastic and training``: one uniform draw from
    ``generator``; if it is ``< epsilon``, ``sort(randperm(k·d)[:k])`` (also from ``generator``).
    Nothing is drawn when not ``stochastic and training``, so eval never advances the generator.
    """
    _check_kd(k, dilation, "select_ranks")
    if not 0.0 <= float(epsilon) <= 1.0:
        raise ValueError(f"select_ranks: epsilon must be in [0, 1]; got {epsilon!r}")
    k, dilation = int(k), int(dilation)
    if stochastic and training:
        coin = torch.rand(1, generator=generator).item()
        if coin < epsilon:
            perm = torch.randperm(k * dilation, generator=generator)[:k]
            return perm.sort().values
    return torch.arange(0, k * dilation, dilation, dtype=torch.long)


def dilated_from_sorted(idx_kd: Tensor, k: int, dilation: int) -> Tensor:
    """Dilate a nearest-first neighbour list: (…, ≥k·d) → (…, k) with ranks 0, d, …, (k−1)d."""
    _check_kd(k, dilation, "dilated_from_sorted")
    k, dilation = int(k), int(dilation)
    if idx_kd.shape[-1] < k * dilation:
        raise ValueError(
            f"dilated_from_sorted: idx_kd must have >= k*dilation={k * dilation} neighbours in its "
            f"last dim; got shape {tuple(idx_kd.shape)}"
        )
    return idx_kd[..., : k * dilation : dilation]


def dilated_knn(
    x: Tensor,
    k: int,
    dilation: int = 1,
    *,
    stochastic: bool = False,
    epsilon: float = 0.2,
    training: bool = False,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
    method: str = "auto",
) -> Tensor:
    """Dilated kNN graph of ``x`` (B, N, C) → indices (B, N, k) int64 (no gradient).

    Column ``r`` is the ``r·d``-th nearest point (deterministic); self is column 0. Needs
    ``N >= k·dilation``. See :func:`select_ranks` for the stochastic rule and
    :func:`pointseg.graph.knn.knn` for ``chunk_size`` / ``method``.
    """
    _check_kd(k, dilation, "dilated_knn")
    k, dilation = int(k), int(dilation)
    if isinstance(x, Tensor) and x.dim() == 3 and x.shape[1] < k * dilation:
        raise ValueError(
            f"dilated_knn: x must be (B, N, C) with N >= k*dilation={k}*{dilation}={k * dilation}; "
            f"got shape {tuple(x.shape)}"
        )
    ranks = select_ranks(
        k, dilation, stochastic=stochastic, epsilon=epsilon, training=training, generator=generator
    )
    return knn_ranks(x, ranks, chunk_size=chunk_size, method=method)


class DilatedKnnGraph(nn.Module):
    """Module form of :func:`dilated_knn`; stochastic dilation only in ``self.training`` mode.

    ``forward(x (B, N, C)) -> idx (B, N, k)``. ``generator`` (optional) makes the stochastic
    choice reproducible; the last ranks used are kept in ``self.last_ranks`` (k,).
    """

    def __init__(
        self,
        k: int = 16,
        dilation: int = 1,
        stochastic: bool = False,
        epsilon: float = 0.2,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_kd(k, dilation, "DilatedKnnGraph")
        k, dilation = int(k), int(dilation)
        if not 0.0 <= float(epsilon) <= 1.0:
            raise ValueError(f"DilatedKnnGraph: epsilon must be in [0, 1]; got {epsilon!r}")
        self.k = k
        self.dilation = dilation
        self.stochastic = stochastic
        self.epsilon = float(epsilon)
        self.generator = generator
        self.last_ranks: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        ranks = select_ranks(
            self.k,
            self.dilation,
            stochastic=self.stochastic,
            epsilon=self.epsilon,
            training=self.training,
            generator=self.generator,
        )
        self.last_ranks = ranks
        return knn_ranks(x, ranks)

    def extra_repr(self) -> str:
        return (
            f"k={self.k}, dilation={self.dilation}, stochastic={self.stochastic}, "
            f"epsilon={self.epsilon}"
        )
