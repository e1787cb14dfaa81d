"""Low-level helpers shared by every layer above: device choice, memory, hashing, RNG state,
determinism, stop signals and optional imports.

This package imports nothing from `pointseg` but `pointseg.errors` (see docs/architecture.md):
the data, model, engine and task layers may all use it without tying themselves into a circle.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use (PEP 562): `pointseg.runtime.hashing` must not pull torch into the data
# layer's worker processes (`prepare_s3dis` hashes every room; torch costs ~2 s per import).
_LAZY = {
    "StopSignals": "signals",
    "TrainingInterrupted": "signals",
    "current_rss": "memory",
    "file_sha256": "hashing",
    "import_ogb": "optional",
    "peak_rss_mb": "memory",
    "progress_bar": "progress",
    "resolve_device": "device",
    "rng_state": "rng",
    "seed_everything": "rng",
    "set_deterministic": "rng",
    "set_rng_state": "rng",
}

__all__ = [
    "StopSignals",
    "TrainingInterrupted",
    "current_rss",
    "file_sha256",
    "import_ogb",
    "peak_rss_mb",
    "progress_bar",
    "resolve_device",
    "rng_state",
    "seed_everything",
    "set_deterministic",
    "set_rng_state",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pointseg.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pointseg.runtime.{module}"), name)
