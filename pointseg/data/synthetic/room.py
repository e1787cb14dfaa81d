"""One synthetic room in memory: the order in which its elements are built (`make_room`).

The order is part of the output: every element draws from one random generator, so changing it
changes every room generated from a seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pointseg.data.synthetic.builder import RoomBuilder
from pointseg.data.synthetic.catalog import ROOM_TYPES, SynthRoom
from pointseg.data.synthetic.clutter import add_clutter
from pointseg.data.synthetic.furniture import add_bookcases, add_furniture, add_sofas
from pointseg.data.synthetic.structure import (
    add_beams,
    add_boards,
    add_columns,
    add_doors,
    add_structure,
    add_windows,
)
from pointseg.errors import ConfigError


def make_room(
    rng: np.random.Generator,
    room_type: str = "office",
    *,
    density: float = 1.0,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    name: str | None = None,
) -> SynthRoom:
    """Generate one room in memory (no files). Coordinates are rounded to mm (3 decimals).

    Objects come out ordered by class index in `CLASSES`, then by creation order; every room
    has at least one object of each of the 13 classes.
    """
    if room_type not in ROOM_TYPES:
        raise ConfigError(
            f"unknown room type {room_type!r}; valid types: {', '.join(sorted(ROOM_TYPES))}"
        )
    b = RoomBuilder(rng, ROOM_TYPES[room_type], density)
    add_structure(b)
    # Wall-bound objects whose wall space is scarce go first: openings, then boards / bookcases.
    add_doors(b)
    add_windows(b)
    add_columns(b)
    add_beams(b)
    add_boards(b)
    add_furniture(b)
    add_sofas(b)
    add_bookcases(b)
    add_clutter(b)
    objects = b.finish()
    shift = np.asarray(origin, dtype=np.float64)
    for o in objects:
        # "+ 0.0" turns -0.0 into 0.0 so no "-0.000" is written.
        o.xyz = np.round(o.xyz + shift, 3) + 0.0
    return SynthRoom(
        name=name or f"{room_type}_1",
        room_type=room_type,
        size=(round(b.L, 3), round(b.W, 3), round(b.H, 3)),
        origin=tuple(float(v) for v in shift),
        objects=objects,
    )
