"""What a synthetic S3DIS room is made of: room types (sizes, object counts), sampling density,
and the generated room's annotated objects.

A room type lists inclusive ranges of object counts; `pointseg.data.synthetic.room.make_room`
draws one room of a type. Every room contains all 13 classes of `pointseg.data.s3dis.CLASSES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pointseg.data.s3dis.classes import CLASSES

CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}

# Points per m² of surface at density=1: a 5 m × 4 m office has ~110 m² of visible surface, so
# ~33k points; rooms land in 20k–60k points (the real data has ~100× more).
BASE_DENSITY = 300.0
# Standard deviation (m) of the isotropic sensor jitter added to every point.
JITTER = 0.003

# Where in an area each room sits: room i's min corner is at x = area_x + i * ROOM_PITCH.
ROOM_PITCH = 13.0

# Room types in the order rooms of an area cycle through them (area a starts at offset 2(a-1)),
# so a small area of 2 rooms already mixes types.
ROOM_CYCLE = (
    "office",
    "conferenceRoom",
    "hallway",
    "office",
    "lounge",
    "copyRoom",
    "office",
    "storage",
)


@dataclass(frozen=True)
class RoomType:
    """Size ranges (m) and object counts (inclusive ranges) of one room type."""

    length: tuple[float, float]  # along x
    width: tuple[float, float]  # along y
    height: tuple[float, float]
    doors: tuple[int, int]
    windows: tuple[int, int]
    boards: tuple[int, int]
    bookcases: tuple[int, int]
    sofas: tuple[int, int]
    columns: tuple[int, int]
    beams: tuple[int, int]
    desks: tuple[int, int]  # tables against a wall, one chair each
    extra_chairs: tuple[int, int]
    clutter: tuple[int, int]
    center_table: str = "none"  # "conference" | "coffee" | "none"


ROOM_TYPES: dict[str, RoomType] = {
    "office": RoomType(
        (4.0, 6.5), (3.0, 5.0), (2.7, 3.1), doors=(1, 1), windows=(1, 2), boards=(1, 1),
        bookcases=(1, 2), sofas=(1, 1), columns=(1, 2), beams=(1, 2), desks=(1, 3),
        extra_chairs=(0, 2), clutter=(5, 10),
    ),
    "conferenceRoom": RoomType(
        (5.5, 7.5), (4.0, 5.5), (2.8, 3.2), doors=(1, 2), windows=(1, 3), boards=(1, 2),
        bookcases=(1, 1), sofas=(1, 1), columns=(1, 2), beams=(1, 2), desks=(0, 0),
        extra_chairs=(0, 2), clutter=(3, 8), center_table="conference",
    ),
    "hallway": RoomType(
        (6.0, 10.0), (2.0, 2.6), (2.7, 3.0), doors=(2, 4), windows=(1, 1), boards=(1, 1),
        bookcases=(1, 1), sofas=(1, 1), columns=(1, 2), beams=(1, 3), desks=(1, 1),
        extra_chairs=(0, 1), clutter=(2, 6),
    ),
    "lounge": RoomType(
        (4.5, 7.0), (3.5, 6.0), (2.7, 3.1), doors=(1, 2), windows=(1, 3), boards=(1, 1),
        bookcases=(1, 1), sofas=(1, 3), columns=(1, 1), beams=(1, 2), desks=(0, 1),
        extra_chairs=(2, 4), clutter=(4, 10), center_table="coffee",
    ),
    "copyRoom": RoomType(
        (3.5, 5.0), (3.0, 4.0), (2.7, 3.0), doors=(1, 1), windows=(1, 1), boards=(1, 1),
        bookcases=(1, 2), sofas=(1, 1), columns=(1, 1), beams=(1, 1), desks=(1, 2),
        extra_chairs=(0, 1), clutter=(4, 9),
    ),
    "storage": RoomType(
        (3.5, 5.5), (3.0, 4.5), (2.7, 3.0), doors=(1, 1), windows=(1, 1), boards=(1, 1),
        bookcases=(2, 3), sofas=(1, 1), columns=(1, 1), beams=(1, 2), desks=(1, 1),
        extra_chairs=(0, 1), clutter=(8, 14),
    ),
}  # fmt: skip


@dataclass
class SynthObject:
    """One annotated object: class name, world coordinates (n, 3) float64, colours (n, 3) uint8."""

    cls: str
    xyz: np.ndarray
    rgb: np.ndarray


@dataclass
class SynthRoom:
    """A generated room: name (``office_1``), type, size (L, W, H) and its objects."""

    name: str
    room_type: str
    size: tuple[float, float, float]
    origin: tuple[float, float, float]
    objects: list[SynthObject] = field(default_factory=list)

    def points(self) -> int:
        return int(sum(len(o.xyz) for o in self.objects))
