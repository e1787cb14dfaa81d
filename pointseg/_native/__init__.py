"""Optional C extensions, built by setup.py when a C compiler is available.

No extension is imported here: each user imports its own (e.g. ``pointseg._native._parse``)
inside a ``try`` and falls back to its numpy / pandas / torch path when it is missing.
"""

from __future__ import annotations

import os

DISABLE_ENV = "POINTSEG_NO_NATIVE"


def disabled() -> bool:
    """``POINTSEG_NO_NATIVE=1`` (any value but empty or "0") turns every kernel off (A/B runs)."""
    return os.environ.get(DISABLE_ENV, "") not in ("", "0")
