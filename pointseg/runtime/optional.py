"""Optional heavy dependencies, imported inside the function that needs them."""

from __future__ import annotations

import importlib
import sys

_MISSING = object()


def import_ogb(module: str = "ogb"):
    """Import `module` of the `ogb` package without its network call.

    ogb 1.3.6's ``import ogb`` starts a thread that asks PyPI whether a newer ogb exists (via the
    `outdated` package). Nothing here may touch the network, so `outdated` is hidden while ogb is
    first imported (ogb then skips the check). ImportError when ogb is not installed.
    """
    if "ogb" not in sys.modules:
        saved = sys.modules.get("outdated", _MISSING)
        sys.modules["outdated"] = None  # type: ignore[assignment]
        try:
            importlib.import_module("ogb")
        finally:
            if saved is _MISSING:
                sys.modules.pop("outdated", None)
            else:
                sys.modules["outdated"] = saved
    return importlib.import_module(module)
