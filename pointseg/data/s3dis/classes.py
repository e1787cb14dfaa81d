"""The S3DIS class table (DESIGN §4: this order, these colours; key result tables by name, not
index): the one home of `CLASSES`, `NUM_CLASSES` and the class colours."""

from __future__ import annotations

import numpy as np

CLASSES: tuple[str, ...] = (
    "ceiling",
    "floor",
    "wall",
    "beam",
    "column",
    "window",
    "door",
    "table",
    "chair",
    "sofa",
    "bookcase",
    "board",
    "clutter",
)
NUM_CLASSES = len(CLASSES)
CLUTTER_ID = CLASSES.index("clutter")
CLASS_TO_ID: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
CLASS_COLORS: np.ndarray = np.array(
    [
        (0, 255, 0),  # ceiling
        (0, 0, 255),  # floor
        (0, 255, 255),  # wall
        (255, 255, 0),  # beam
        (255, 0, 255),  # column
        (100, 100, 255),  # window
        (200, 200, 100),  # door
        (170, 120, 200),  # table
        (255, 0, 0),  # chair
        (200, 100, 100),  # sofa
        (10, 200, 100),  # bookcase
        (200, 200, 200),  # board
        (50, 50, 50),  # clutter
    ],
    dtype=np.uint8,
)
CLASS_COLORS.setflags(write=False)


def class_name_to_id(name: str, *, strict: bool = False) -> int:
    """Map an S3DIS class name (case-insensitive) to its DESIGN §4 index.

    Unknown names (e.g. ``stairs``) map to clutter, as in the raw-data convention; with
    ``strict=True`` they raise ``KeyError`` listing the valid names instead.
    """
    key = name.strip().lower()
    if key in CLASS_TO_ID:
        return CLASS_TO_ID[key]
    if strict:
        raise KeyError(f"unknown S3DIS class {name!r}; valid: {', '.join(CLASSES)}")
    return CLUTTER_ID
