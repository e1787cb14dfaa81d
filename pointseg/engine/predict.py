"""Streaming whole-cloud inference: tiles → lazy blocks → batched inference → per-point votes.

The one inference loop behind `pointseg predict` (any point cloud) and the whole-room protocol of
`pointseg eval` (`pointseg.engine.s3dis_eval.predict_room`):

1. :class:`pointseg.data.blocks.BlockStream` cuts the cloud's column grid into tiles (10 m × 10 m
   by default) and plans each tile's block samples lazily, with the test recipe of training
   (`cover_all`: every point of a kept block is sampled at least once). Samples and channels do
   not depend on the tiling: the same seed gives the blocks of `room_to_blocks`, bit for bit.
2. Samples are batched (across tile borders) and run through the model under
   ``torch.inference_mode()`` in eval mode (BatchNorm running statistics, no autograd records).
3. Softmax probabilities are summed into one (n, C) float32 accumulator and a vote count per
   point, then divided by the count: the averaged probabilities of every block sample that
   contains the point (a point duplicated to pad a short block votes once per copy).
4. Points in no kept block (columns with fewer than `min_points` points) take the probabilities
   of their nearest scored point (3-D kd-tree). With several tiles the search runs tile by tile
   (one tree per tile's scored points, pruned by bounding boxes), so it never holds a tree of the
   whole cloud; the result is the exact nearest scored point, as with one tree.

Memory: the cloud, the (n, C) accumulator and n vote counts (~4·C + 4 bytes per point), one
index per point for the tile order, and the tiles in flight (~0.15 KB per tile point at stride
1, ~0.4 KB at stride 0.5) plus the model's activations for one batch. Nothing is proportional
to the number of blocks of the whole cloud.
"""

from __future__ import annotations

import math
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from pointseg.data.blocks import BlockStream, nearest_covered_index
from pointseg.errors import ConfigError, DataError
from pointseg.runtime import current_rss, resolve_device

__all__ = ["CloudPrediction", "predict_cloud", "nearest_scored_index"]

_CHUNK = 1 << 20  # rows per chunk of the per-point finishing passes


@dataclass
class CloudPrediction:
    """Whole-cloud result for n points and C classes.

    Attributes:
        prob: (n, C) float32 averaged softmax (back-projected for unscored points), or None when
            `keep_prob=False`.
        pred: (n,) argmax class (uint8 for <= 256 classes, else int32).
        confidence: (n,) float32 probability of the predicted class.
        votes: (n,) int32 block samples that scored the point (0 = back-projected).
        num_blocks: block samples run through the model.
        num_unscored: points that took their probabilities from the nearest scored point.
        num_tiles: tiles of the stream (1 = the whole cloud at once).
        times: seconds spent blocking (tile planning + channels, in this thread: waiting for the
            producer when `workers` > 0), in the network (forward + softmax + copy to the host),
            voting (accumulation) and finishing (division, back-projection, argmax).
    """

    prob: np.ndarray | None
    pred: np.ndarray
    confidence: np.ndarray
    votes: np.ndarray
    num_blocks: int
    num_unscored: int
    num_tiles: int
    times: dict[str, float] = field(default_factory=dict)


def _batches(
    stream: BlockStream, batch_size: int, workers: int
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """(data (b, P, 9), cloud indices (b, P), home points finished) batches over every tile.

    Samples of consecutive tiles share batches, so only the very last batch is short.
    """
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    fill = 0
    done = 0  # home points of tiles whose samples are all in yielded or pending batches
    for tile in stream.tiles(workers):
        k = len(tile.plan)
        s = 0
        while s < k:
            take = min(batch_size - fill, k - s)
            parts.append(tile.features(s, s + take))
            fill += take
            s += take
            if fill == batch_size:
                yield _join(parts), done
                parts, fill, done = [], 0, 0
        done += int(tile.home.size)
    if fill:
        yield _join(parts), done
    elif done:
        yield (None, None), done


def _join(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _prefetch(it: Iterator, depth: int) -> Iterator:
    """Run `it` in a background thread, at most `depth` items ahead; re-raises its errors."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def run() -> None:
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(end)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=run, name="pointseg-blocks", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def nearest_scored_index(stream: BlockStream, scored: np.ndarray) -> np.ndarray:
    """For every point with ``scored == False``, the cloud index of its nearest scored point.

    Returns (u,) int64 sources for ``np.flatnonzero(~scored)``. One tile: one kd-tree over every
    scored point (:func:`nearest_covered_index`). Several tiles: one tree per tile's scored home
    points, the unscored points' own tiles first, a tile skipped for the queries whose distance to
    its bounding box exceeds their best distance so far — exact, with ties to the lower index.
    """
    from scipy.spatial import cKDTree

    unscored = np.flatnonzero(~scored)
    if unscored.size == 0:
        return unscored.astype(np.int64)
    if not scored.any():
        raise DataError("no point of the cloud was scored, nothing to back-project from")
    if stream.num_tiles == 1:
        return nearest_covered_index(stream.xyz, scored)[unscored]
    q = stream.xyz[unscored].astype(np.float64)  # (u, 3)
    best_d = np.full(unscored.size, np.inf)
    best = np.full(unscored.size, -1, dtype=np.int64)
    own = np.unique(stream.home_tile(unscored))
    rest = np.setdiff1d(np.arange(stream.num_tiles), own)
    for tid in np.concatenate([own, rest]):
        h = stream.home(int(tid))
        h = h[scored[h]]
        if h.size == 0:
            continue
        p = stream.xyz[h].astype(np.float64)  # (h, 3)
        gap = np.maximum(np.maximum(p.min(axis=0) - q, q - p.max(axis=0)), 0.0)  # (u, 3)
        sel = np.flatnonzero(np.sqrt((gap * gap).sum(axis=1)) <= best_d)
        if sel.size == 0:
            continue
        bound = float(best_d[sel].max())
        d, j = cKDTree(p).query(q[sel], k=1, distance_upper_bound=np.nextafter(bound, np.inf))
        found = np.isfinite(d)
        sel, d, j = sel[found], d[found], j[found]
        src = h[j]
        better = (d < best_d[sel]) | ((d == best_d[sel]) & (src < best[sel]))
        best_d[sel[better]] = d[better]
        best[sel[better]] = src[better]
    return best


def predict_cloud(
    model: nn.Module,
    xyz: np.ndarray,
    rgb: np.ndarray,
    *,
    num_classes: int,
    num_point: int = 4096,
    block_size: float = 1.0,
    stride: float = 1.0,
    min_points: int = 100,
    centering: str = "points",
    batch_size: int = 8,
    tile_size: float | None = 10.0,
    workers: int = 0,
    device: str | torch.device | None = None,
    seed: int = 0,
    keep_prob: bool = True,
    on_points: Callable[[int], None] | None = None,
) -> CloudPrediction:
    """Segment every point of a cloud with sliding blocks, streamed tile by tile (module docstring).

    Args:
        model: segmentation model, ``model(x (B, num_point, 9)) -> logits (B, num_point, C)``;
            put in eval mode here.
        xyz: (n, 3) float coordinates in metres, z up; rgb: (n, 3) colours 0..255.
        stride: sliding-window stride (1.0: the paper's test stride; 0.5: each point in up to 4
            blocks).
        tile_size: tile side in metres (None: the whole cloud as one tile).
        workers: 0 = blocks are made in this thread; N > 0 = a producer thread makes batches
            ahead of the network, and N − 1 more threads plan tiles ahead.
        seed: seeds the point sampling inside blocks (reproducible predictions).
        keep_prob: return the (n, C) probabilities (else only pred / confidence).
        on_points: called with a number of points each time a tile's points are final.

    Returns:
        :class:`CloudPrediction`.
    """
    n = int(np.shape(xyz)[0])
    if n == 0:
        raise DataError("the point cloud has no points")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    model.eval()
    t_start = time.perf_counter()
    try:
        stream = BlockStream(
            xyz, rgb, block_size=block_size, stride=stride, num_point=num_point,
            min_points=min_points, rng=np.random.default_rng(seed), cover_all=True,
            centering=centering, tile_size=tile_size,
        )  # fmt: skip
    except ValueError as exc:
        raise DataError(str(exc)) from None
    times = {"blocking": time.perf_counter() - t_start, "network": 0.0, "voting": 0.0}
    prob_sum = torch.zeros((n, num_classes), dtype=torch.float32)  # the only (n, C) array
    votes = torch.zeros(n, dtype=torch.int32)
    nb = 0
    batches = _batches(stream, batch_size, workers - 1 if workers > 0 else 0)
    if workers > 0:
        batches = _prefetch(batches, depth=2)
    it = iter(batches)
    with torch.inference_mode():
        while True:
            t0 = time.perf_counter()
            item = next(it, None)
            t1 = time.perf_counter()
            times["blocking"] += t1 - t0
            if item is None:
                break
            (data, index), done = item
            if data is not None:
                x = torch.from_numpy(data)
                logits = model(x.to(dev, non_blocking=True))  # (b, P, C)
                if (
                    logits.ndim != 3
                    or logits.shape[:2] != x.shape[:2]
                    or logits.shape[2] != num_classes
                ):
                    raise ConfigError(
                        f"model returned logits of shape {tuple(logits.shape)} for blocks "
                        f"{tuple(x.shape)}; expected (B, N, {num_classes}) — is this a "
                        f"segmentation checkpoint for {num_classes} classes?"
                    )
                p = torch.softmax(logits.float(), dim=-1).cpu().reshape(-1, num_classes)
                t2 = time.perf_counter()
                times["network"] += t2 - t1
                idx = torch.from_numpy(index).reshape(-1)
                prob_sum.index_add_(0, idx, p)
                votes.index_add_(0, idx, torch.ones_like(idx, dtype=torch.int32))
                times["voting"] += time.perf_counter() - t2
                nb += data.shape[0]
            if done and on_points is not None:
                on_points(done)

    if nb == 0 and min_points > 1:
        # A tiny cloud where every block is below min_points: score it anyway rather than leave
        # every point without a prediction.
        return predict_cloud(
            model, xyz, rgb, num_classes=num_classes, num_point=num_point, block_size=block_size,
            stride=stride, min_points=1, centering=centering, batch_size=batch_size,
            tile_size=tile_size, workers=workers, device=dev, seed=seed, keep_prob=keep_prob,
        )  # fmt: skip

    t0 = time.perf_counter()
    for s in range(0, n, _CHUNK):  # chunked: no (n, C) temporaries
        v = votes[s : s + _CHUNK]
        prob_sum[s : s + _CHUNK] /= v.clamp(min=1)[:, None].to(torch.float32)
    prob = prob_sum.numpy()
    votes_np = votes.numpy()
    scored = votes_np > 0
    unscored = np.flatnonzero(~scored)
    if unscored.size:
        prob[unscored] = prob[nearest_scored_index(stream, scored)]
    pred = np.empty(n, dtype=np.uint8 if num_classes <= 256 else np.int32)
    confidence = np.empty(n, dtype=np.float32)
    for s in range(0, n, _CHUNK):
        chunk = prob[s : s + _CHUNK]
        pred[s : s + _CHUNK] = chunk.argmax(axis=1)
        confidence[s : s + _CHUNK] = chunk.max(axis=1)
    times["finishing"] = time.perf_counter() - t0
    return CloudPrediction(
        prob=prob if keep_prob else None,
        pred=pred,
        confidence=confidence,
        votes=votes_np,
        num_blocks=nb,
        num_unscored=int(unscored.size),
        num_tiles=stream.num_tiles,
        times=times,
    )


# ============================================================================ `pointseg predict`
# Files in, segmented files out: checkpoint settings, input handling, memory plan, outputs.

OUTPUT_FORMATS = ("ply", "npz", "txt", "csv")


@dataclass
class BlockSettings:
    """The block recipe a checkpoint was trained with (and where each value came from)."""

    block_size: float = 1.0
    num_point: int = 4096
    min_points: int = 100
    centering: str = "points"
    source: str = "defaults (the paper's recipe)"


def checkpoint_block_settings(ckpt: dict, path) -> BlockSettings:
    """Block size, points per block, min points and centering the model was trained with: the
    checkpoint's input recipe (`pointseg.recipe.checkpoint_recipe`)."""
    from pointseg.recipe import checkpoint_recipe

    r = checkpoint_recipe(ckpt, str(path))
    return BlockSettings(r.block_size, r.num_point, r.min_points, r.centering, r.source)


def _parse_bytes(text: str | int | float | None) -> int | None:
    """'2GB', '1.5G', '800MB', '800M', 2e9 → bytes (powers of 1024 for the units)."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text).lower())
    if not m:
        raise ConfigError(f"--max-memory {text!r}: expected a size such as 2GB, 1500MB or 2.5G")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2)]
    return int(float(m.group(1)) * scale)


def activation_bytes(config: dict, num_point: int) -> int:
    """Upper estimate of one block's inference activations: the per-layer features kept for the
    fusion (3 copies at the widest moment), the fused and head features, one kNN score chunk.
    ResGCN-28 at 4096 points: 134 MB (measured peak delta of one block: 131 MB)."""
    feat = int(config.get("channels", 64)) * int(config.get("num_blocks", 28))
    fusion = int(config.get("fusion_channels", 1024))
    head = sum(int(h) for h in config.get("head_channels", (512, 256)))
    return 4 * num_point * (3 * feat + 2 * fusion + head) + (16 << 20)


@dataclass
class MemoryPlan:
    tile_size: float
    batch_size: int
    note: str


def plan_memory(
    budget: int | None,
    xyz: np.ndarray,
    *,
    num_classes: int,
    config: dict,
    settings: BlockSettings,
    stride: float,
    batch_size: int | None,
    tile_size: float | None,
    workers: int = 1,
) -> MemoryPlan:
    """Tile side and batch size that keep resident memory under `budget` bytes (None: defaults).

    Already resident (measured now): the process, the model and the loaded cloud. Per point still
    to come: the (n, C) float32 accumulator, vote count, tile order, prediction and confidence.
    Per tile point: shifted coordinates, memberships and sample indices (~100 + 70·(block /
    stride)² bytes), for `workers` + 1 tiles in flight. Per block of a batch: `activation_bytes`.
    Tiles are sized for the densest 2 m × 2 m cell of the cloud.
    """
    b = settings.block_size
    act = activation_bytes(config, settings.num_point)
    if budget is None:
        return MemoryPlan(
            tile_size if tile_size is not None else 10.0,
            batch_size or 8,
            "no --max-memory: 10 m tiles, batch 8",
        )
    n = len(xyz)
    # The cloud (coordinates, colours, any transformed copy) is loaded already: it is in `base`.
    # Per point still to come: accumulator 4·C, votes 4, tile order 4 (+ 8 while sorting),
    # prediction 1, confidence 4.
    per_point = 4 * num_classes + 21
    base = current_rss()
    avail = budget - base - n * per_point
    need_min = act + (64 << 20)
    if avail < need_min:
        raise ConfigError(
            f"--max-memory {budget / 2**30:.2f} GiB is too small: the process already holds "
            f"{base / 2**30:.2f} GiB, the {n:,} points need {n * per_point / 2**30:.2f} GiB "
            f"(coordinates, colours, {num_classes}-class vote accumulator) and one block of the "
            f"model {act / 2**20:.0f} MiB; allow at least "
            f"{(base + n * per_point + need_min) / 2**30:.2f} GiB"
        )
    if batch_size is None:
        batch_size = int(max(1, min(8, (avail // 2) // act)))
    # Tiles in flight: the one being consumed, plus `workers` planned ahead.
    tile_budget = (avail - batch_size * act) / (max(workers, 0) + 1)
    if tile_budget < (32 << 20):
        raise ConfigError(
            f"--max-memory {budget / 2**30:.2f} GiB leaves no room for tiles with batch "
            f"{batch_size} ({batch_size * act / 2**20:.0f} MiB of activations); lower --batch-size"
        )
    if tile_size is None:
        cell = 2.0
        lo = xyz.min(axis=0)[:2].astype(np.float64)
        counts: dict[int, int] = {}
        for s in range(0, n, _CHUNK):
            ij = np.floor((xyz[s : s + _CHUNK, :2] - lo) / cell).astype(np.int64)  # (c, 2)
            keys, cnt = np.unique(ij[:, 0] * (1 << 32) + ij[:, 1], return_counts=True)
            for key, c in zip(keys.tolist(), cnt.tolist(), strict=True):
                counts[key] = counts.get(key, 0) + c
        dens = max(counts.values()) / (cell * cell)  # points per m² of the densest cell
        # shifted xyz, colour, indices and per-point column ranges (~100 B), then per membership
        # (~(block / stride)² per point) the sort keys and sample indices (~70 B)
        per_tile_point = 100 + 70 * (b / stride) ** 2
        side = math.sqrt(max(tile_budget / (dens * per_tile_point), 0.0)) - b
        tile_size = float(min(50.0, max(stride, math.floor(side / stride) * stride)))
    note = (
        f"--max-memory {budget / 2**30:.2f} GiB: {tile_size:g} m tiles, batch {batch_size} "
        f"(~{act / 2**20:.0f} MiB per block, {n * per_point / 2**20:.0f} MiB for the points)"
    )
    return MemoryPlan(tile_size, batch_size, note)
