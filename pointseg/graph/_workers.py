"""The worker pool and row partition shared by the kNN paths (`knn` and `bf16`).

Kept apart so that `pointseg.graph.knn` and `pointseg.graph.bf16` both import it and neither
imports the other.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] | None = None  # (pid, workers): a forked child must not reuse it


def get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_key
    key = (os.getpid(), workers)
    with _pool_lock:
        if _pool is None or _pool_key != key:
            if _pool is not None and _pool_key is not None and _pool_key[0] == key[0]:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="pointseg-knn")
            _pool_key = key
        return _pool


def row_splits(r: int, parts: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, r, max(1, min(parts, r)) + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
