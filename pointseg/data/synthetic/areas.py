"""`synth_s3dis`: areas of synthetic rooms written in the raw Stanford S3DIS layout.

Rooms of an area cycle through the room types (area a starts at offset 2(a − 1)) and sit side by
side in an area-wide frame; room i of area a is a pure function of (seed, a, i, density).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pointseg.data.synthetic.catalog import ROOM_CYCLE
from pointseg.data.synthetic.room import make_room
from pointseg.data.synthetic.writer import FileWriter, check_count, prepare_out, write_room
from pointseg.errors import ConfigError

# Where in an area each room sits: room i's min corner is at x = area_x + i * ROOM_PITCH.
ROOM_PITCH = 13.0


def room_plan(area: int, rooms_per_area: int) -> list[tuple[int, str, str]]:
    """(room index, room type, room name) of the rooms of one area, e.g. ``office_1``."""
    plan, seen = [], {}
    for i in range(rooms_per_area):
        rtype = ROOM_CYCLE[(i + 2 * (area - 1)) % len(ROOM_CYCLE)]
        seen[rtype] = seen.get(rtype, 0) + 1
        plan.append((i, rtype, f"{rtype}_{seen[rtype]}"))
    return plan


def synth_s3dis(
    out: str | Path,
    *,
    areas: int | Sequence[int] = 6,
    rooms_per_area: int = 2,
    seed: int = 0,
    density: float = 1.0,
    progress: bool = True,
) -> list[Path]:
    """Write synthetic S3DIS rooms in the raw Stanford layout; return the room folders.

    ``<out>/Area_<a>/<room>/Annotations/<class>_<i>.txt`` and ``<out>/Area_<a>/<room>/<room>.txt``
    (the concatenation of the annotation files in natural name order, see `annotation_order`).
    `areas` is a count (areas 1..n) or an explicit list of area numbers. Room ``i`` of area ``a``
    is a pure function of ``(seed, a, i, density)``: generating a subset of areas writes the same
    bytes for those areas. Stale ``<class>_<i>.txt`` files left in a room's Annotations folder by
    an earlier run are removed so the room file stays the concatenation of the annotations.
    """
    seed = check_count("seed", seed, 0)
    rooms_per_area = check_count("rooms_per_area", rooms_per_area)
    if isinstance(areas, (int, np.integer)) and not isinstance(areas, bool):
        area_ids = list(range(1, check_count("areas", areas) + 1))
    else:
        area_ids = [check_count("area number", a) for a in areas]
        if not area_ids:
            raise ConfigError("areas must name at least one area")
    if not (isinstance(density, (int, float)) and math.isfinite(density) and density > 0):
        raise ConfigError(f"density must be a positive number; got {density!r}")
    out = prepare_out(out)
    jobs = [(a, *p) for a in area_ids for p in room_plan(a, rooms_per_area)]
    written = []
    with FileWriter() as writer:
        for a, i, rtype, name in tqdm(jobs, desc="synth s3dis", unit="room", disable=not progress):
            # Area frame: each area has its own random global offset, rooms sit side by side in it.
            area_rng = np.random.default_rng(np.random.SeedSequence([seed, a]))
            ax, ay = area_rng.uniform(-25.0, 25.0, size=2)
            rng = np.random.default_rng(np.random.SeedSequence([seed, a, i]))
            origin = (ax + i * ROOM_PITCH, ay + float(rng.uniform(-1.0, 1.0)), 0.0)
            room = make_room(rng, rtype, density=density, origin=origin, name=name)
            written.append(write_room(out / f"Area_{a}" / name, room, writer=writer))
    return written
