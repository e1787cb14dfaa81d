"""Exact batched k-nearest neighbours on dense point / feature tensors.

The dense path of DeepGCNs (Li et al., ICCV'19) rebuilds a kNN graph in feature space at every
block. For ``x`` of shape ``(B, N, C)`` we rank, per query row ``i``, the squared distances

    ‖x_i − x_j‖² = ‖x_i‖² − 2 x_i·x_j + ‖x_j‖²

and return the indices of the ``k`` nearest points ``(B, N, k)`` (self at rank 0, nearest first).

Implementation notes (measured in ``benchmarks/knn.py``):
- The features are centred per batch element first: the expansion above cancels catastrophically
  when ‖x‖ ≫ ‖x_i − x_j‖, and centring cuts float32 rank disagreement with float64 ~8×.
- ``‖x_i‖²`` is constant along a query row, so ranking only needs ``‖x_j‖² − 2 x_i·x_j``: one
  fused ``torch.baddbmm`` per chunk of query rows, no full ``B × N × N`` matrix.
- Self is forced to rank 0 by writing ``-inf`` on the diagonal: with duplicate points (distance 0
  to another point) rounding could otherwise put a duplicate first.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["knn", "knn_ranks", "check_points", "default_chunk_size"]

# Bytes of one (chunk, N) float32 score block per batch element that we aim for: a few MB keeps
# the block in L2/L3 while topk scans it (see benchmarks/knn.py for the sweep).
_CHUNK_BYTES = 4 * 1024 * 1024


def check_points(x: Tensor, k: int, name: str = "knn") -> None:
    """Validate ``x`` (B, N, C) for a k-nearest-neighbour query; raise ValueError otherwise."""
    if not isinstance(x, Tensor):
        raise ValueError(
            f"{name}: x must be a torch.Tensor of shape (B, N, C); got {type(x).__name__}"
        )
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"{name}: k must be an int >= 1; got {k!r}")
    if k < 1:
        raise ValueError(f"{name}: k must be >= 1; got k={k}")
    if x.dim() != 3 or x.shape[0] == 0 or x.shape[2] == 0:
        raise ValueError(
            f"{name}: x must be (B, N, C) with B >= 1, N >= k={k}, C >= 1; got shape {tuple(x.shape)}"
        )
    if x.shape[1] < k:
        raise ValueError(f"{name}: x must be (B, N, C) with N >= k={k}; got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(
            f"{name}: x must be a floating-point tensor (B, N, C); got dtype {x.dtype}"
        )
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name}: x of shape {tuple(x.shape)} contains {bad} non-finite value(s) (nan/inf); "
            "expected finite features"
        )


def default_chunk_size(n: int) -> int:
    """Query rows per chunk so one (chunk, n) float32 score block is about ``_CHUNK_BYTES``."""
    return max(1, min(n, _CHUNK_BYTES // (4 * n)))


def _scores_chunk(xc: Tensor, xt: Tensor, sq: Tensor, start: int, stop: int) -> Tensor:
    """Ranking scores ``‖x_j‖² − 2 x_i·x_j`` for query rows ``start:stop``; self set to -inf.

    xc: (B, N, C) centred features; xt: (B, C, N) its transpose; sq: (B, 1, N) squared norms.
    Returns (B, stop − start, N).
    """
    # One fused kernel: sq + (−2) · x_chunk @ xᵀ.  (B, m, N)
    s = torch.baddbmm(sq, xc[:, start:stop], xt, beta=1.0, alpha=-2.0)
    # Diagonal entries (row r ↔ column start + r) of the (m, N) block, per batch element.
    s.diagonal(offset=start, dim1=1, dim2=2).fill_(float("-inf"))  # (B, m) view
    return s


@torch.no_grad()
def knn(x: Tensor, k: int, *, chunk_size: int | None = None) -> Tensor:
    """Exact kNN graph of ``x`` (B, N, C): indices (B, N, k) int64, self at rank 0, nearest first.

    Args:
        x: point coordinates or features, channels last. No gradient flows through the graph.
        k: neighbours per point, self included (``1 <= k <= N``).
        chunk_size: query rows per chunk (memory O(B · chunk · N)); default sized to the cache.

    Raises:
        ValueError: x not (B, N, C) / empty / N < k / k < 1 / non-finite values.
    """
    check_points(x, k, "knn")
    return _topk_indices(x, k, sorted_=True, chunk_size=chunk_size)


def _topk_indices(x: Tensor, kmax: int, *, sorted_: bool, chunk_size: int | None) -> Tensor:
    """Indices (B, N, kmax) of the kmax smallest scores per row (self first when sorted_)."""
    x = x.detach()
    B, N, C = x.shape
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()  # half / bf16 matmuls are emulated (slow) on CPU and too coarse for ranking
    xc = x - x.mean(dim=1, keepdim=True)  # (B, N, C) centred: avoids cancellation
    xt = xc.transpose(1, 2).contiguous()  # (B, C, N)
    sq = xc.pow(2).sum(dim=-1).unsqueeze(1)  # (B, 1, N)
    if chunk_size is None:
        chunk_size = default_chunk_size(N)
    if chunk_size < 1:
        raise ValueError(f"knn: chunk_size must be >= 1; got {chunk_size}")
    out = torch.empty(B, N, kmax, dtype=torch.long, device=x.device)
    for start in range(0, N, chunk_size):
        stop = min(N, start + chunk_size)
        s = _scores_chunk(xc, xt, sq, start, stop)  # (B, m, N)
        out[:, start:stop] = s.topk(kmax, dim=-1, largest=False, sorted=sorted_).indices
    return out


@torch.no_grad()
def knn_ranks(x: Tensor, ranks: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """Neighbours of ``x`` (B, N, C) at the given distance ranks: (B, N, len(ranks)).

    ``ranks`` (k,) int64 are 0-based positions in the nearest-first list (0 = self); the result
    column ``r`` holds the ``ranks[r]``-th nearest neighbour. Used by dilated kNN (ranks
    0, d, …, (k−1)d) and by stochastic dilation, whose random ranks can be drawn once and
    replayed to recompute the identical graph.
    """
    ranks = torch.as_tensor(ranks)
    if ranks.dim() != 1 or ranks.numel() == 0 or ranks.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"knn_ranks: ranks must be a non-empty 1-D integer tensor (k,); got shape "
            f"{tuple(ranks.shape)} dtype {ranks.dtype}"
        )
    if int(ranks.min()) < 0:
        raise ValueError(f"knn_ranks: ranks must be >= 0; got min {int(ranks.min())}")
    kmax = int(ranks.max()) + 1
    check_points(x, kmax, "knn_ranks")
    idx = _topk_indices(x, kmax, sorted_=True, chunk_size=chunk_size)  # (B, N, kmax)
    return idx.index_select(-1, ranks.to(device=idx.device, dtype=torch.long))
