"""RNG state (checkpointed for exact resume), seeding and deterministic mode."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

# cuBLAS needs a fixed workspace for deterministic matmuls on CUDA >= 10.2; without it
# `torch.use_deterministic_algorithms(True)` raises at the first CUDA matmul.
CUBLAS_WORKSPACE = ":4096:8"


def rng_state() -> dict:
    """RNG states in a `torch.load(weights_only=True)`-loadable form (tensors, ints, floats, lists)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_state[0]),
            "state": torch.tensor(py_state[1], dtype=torch.int64),
            "gauss_next": py_state[2],
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of `rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["key"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(deterministic: bool, threads: int | None = None) -> None:
    """Deterministic mode for every task: `torch.use_deterministic_algorithms(True)`, the cuBLAS
    workspace setting CUDA needs for it, and a fixed thread count (same count ⇒ same CPU reduction
    order; default 1). Otherwise only `threads`, when given."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(threads or 1)
    elif threads:
        torch.set_num_threads(threads)
