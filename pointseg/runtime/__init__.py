"""Low-level helpers shared by every layer above: device choice, memory, hashing, RNG state,
determinism, stop signals and optional imports.

This package imports nothing from `pointseg` but `pointseg.errors` (see docs/architecture.md):
the data, model, engine and task layers may all use it without tying themselves into a circle.
"""

from pointseg.runtime.device import resolve_device
from pointseg.runtime.hashing import file_sha256
from pointseg.runtime.memory import current_rss, peak_rss_mb
from pointseg.runtime.optional import import_ogb
from pointseg.runtime.rng import rng_state, seed_everything, set_deterministic, set_rng_state
from pointseg.runtime.signals import StopSignals, TrainingInterrupted

__all__ = [
    "StopSignals",
    "TrainingInterrupted",
    "current_rss",
    "file_sha256",
    "import_ogb",
    "peak_rss_mb",
    "resolve_device",
    "rng_state",
    "seed_everything",
    "set_deterministic",
    "set_rng_state",
]
