"""Project-wide test settings.

Tests use tiny tensors, where thread start-up dominates: one torch thread per pytest worker is
much faster (and `make test` runs two workers on the two cores).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# POINTSEG_SHARED_DATA points elsewhere (e.g. from a git worktree that has no ../shared).
SHARED_DATA = Path(
    os.environ.get("POINTSEG_SHARED_DATA") or PROJECT_ROOT.parent / "shared" / "data"
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real samples (../shared/data); tests that need them skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA}")
    return SHARED_DATA
