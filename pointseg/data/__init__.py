"""Datasets: S3DIS rooms and blocks, ModelNet40, graph benchmarks, synthetic generators.

Sub-modules are imported on first use (`pointseg.data.blocks`, `pointseg.data.modelnet`, …) so that
`import pointseg.data` stays cheap and never pulls optional dependencies. The most used names are
re-exported lazily: `from pointseg.data import S3DISBlocks` works.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Blocks": "blocks",
    "BlockAugment": "augment",
    "S3DISBlocks": "blocks",
    "room_to_blocks": "blocks",
    "make_s3dis_blocks": "blocks",
    "read_blocks_h5": "blocks",
    "write_blocks_h5": "blocks",
    "nearest_covered_index": "blocks",
    "MODELNET40_CLASSES": "modelnet",
    "ModelNetH5": "modelnet",
    "ModelNetMeshes": "modelnet",
    "ShapeAugment": "augment",
    "read_mesh": "mesh",
    "sample_surface": "mesh",
    "read_ply": "ply",
    "write_ply": "ply",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pointseg.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pointseg.data.{module}"), name)
