"""S3DIS area and room names: the one home of the area patterns and helpers.

Three kinds of name carry an area number:

- an area folder of the raw data or of the room cache: ``Area_5`` (:data:`AREA_DIR_RE`);
- a room name in block files (``room_filelist.txt``): ``Area_5_office_1`` (:data:`ROOM_NAME_RE`);
- an area as a user gives it: ``5``, ``"5"``, ``"Area_5"``, ``"area_5"`` (:func:`area_number`);
- any name or path that mentions one, leniently (:func:`area_in`).

Names sort naturally (``Area_2`` before ``Area_10``, ``office_2`` before ``office_10``) with
:func:`natural_key`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

AREA_DIR_RE = re.compile(r"^Area_(\d+)$")
ROOM_NAME_RE = re.compile(r"^Area_(\d+)_")
_AREA_IN_RE = re.compile(r"Area_(\d+)")
_AREA_ARG_RE = re.compile(r"(?i:area_?)?(\d+)")


def area_number(area: int | str) -> int:
    """``5``, ``"5"``, ``"Area_5"``, ``"area_5"`` → 5 (ValueError naming the accepted forms)."""
    text = str(area).strip()
    m = _AREA_ARG_RE.fullmatch(text)
    if not m:
        raise ValueError(f"bad S3DIS area {area!r}: expected a number 1-6 or 'Area_N'")
    return int(m[1])


def normalize_area(area: int | str) -> str:
    """``1``, ``"1"``, ``"Area_1"``, ``"area_1"`` -> ``"Area_1"``."""
    return f"Area_{area_number(area)}"


def parse_areas(areas: Iterable[int | str] | int | str | None) -> list[int] | None:
    """Normalise area selections: 5, "5", "Area_5", "1,2,3", [1, "Area_2"] → sorted ints."""
    if areas is None:
        return None
    if isinstance(areas, int | str):
        areas = [areas]
    out: set[int] = set()
    for a in areas:
        for part in str(a).split(","):
            part = part.strip()
            if not part:
                continue
            if not _AREA_ARG_RE.fullmatch(part):
                raise ValueError(f"bad area {part!r}: expected a number 1-6 or 'Area_<N>'")
            out.add(area_number(part))
    return sorted(out)


def area_of_room(name: str) -> int:
    """`Area_5_office_1` → 5."""
    m = ROOM_NAME_RE.match(name)
    if not m:
        raise ValueError(f"room name {name!r} does not start with 'Area_<N>_'")
    return int(m.group(1))


def area_in(name: str) -> int | None:
    """The area a name mentions anywhere (``Area_5_office_1``, ``Area_5``, a path holding one)
    → 5; None when it names no area (the lenient form of :func:`area_of_room`)."""
    m = _AREA_IN_RE.search(str(name))
    return int(m.group(1)) if m else None


def natural_key(name: str) -> tuple:
    """Sort key that orders the digit runs of a name by value: ``office_2`` < ``office_10``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))
