"""Progress bars for long loops (tqdm, imported on first use)."""

from __future__ import annotations

from typing import Any


def progress_bar(iterable: Any = None, **kw: Any) -> Any:
    """`tqdm.auto.tqdm(iterable, **kw)`; pass ``disable=True`` to hide it."""
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)
