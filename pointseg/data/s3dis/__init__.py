"""S3DIS: the class table, a robust raw-room parser and the canonical room cache.

Raw layout (Stanford, v1.2 aligned or not): ``Area_N/<room>/Annotations/<class>_<k>.txt`` with one
``x y z r g b`` line per point. Every annotation file becomes one object: its points get the
semantic label of the file-name prefix (unknown prefixes such as ``stairs`` become clutter) and a
per-room running instance id.

Cache (written by :func:`prepare_s3dis`, read by everyone else):

- ``<out>/Area_N/<room>.npz``: ``xyz`` float32 (n, 3), ``rgb`` uint8 (n, 3), ``label`` uint8 (n,),
  ``instance`` int32 (n,).
- ``<out>/index.json``: ``{"version": 1, "classes": [...], "rooms": [{"area", "room", "file",
  "points", "histogram", ...}]}``; each room entry also records the npz size and sha256 (resume
  verification), the source fingerprint and the room's parse issues.
- ``<out>/prepare_report.jsonl``: one JSON object per issue (file, line, raw bytes, action).

Package layout (one idea per module): `classes` (the class table), `issues` (what parsing found
and did), `parse` (one annotation file; the parsing strategy and its speed are documented
there), `room` (`parse_room`), `cache` (the room cache: write, read, list) and `prepare`
(`prepare_s3dis`: every room, in parallel, resumable). Area names live in `pointseg.data.areas`.
"""

from __future__ import annotations

from pointseg.data.areas import normalize_area
from pointseg.data.s3dis.cache import (
    CACHE_KEYS,
    INDEX_NAME,
    INDEX_VERSION,
    REPORT_NAME,
    list_rooms,
    load_room,
    read_index,
    save_room,
)
from pointseg.data.s3dis.classes import (
    CLASS_COLORS,
    CLASS_TO_ID,
    CLASSES,
    CLUTTER_ID,
    NUM_CLASSES,
    class_name_to_id,
)
from pointseg.data.s3dis.issues import MAX_LINE_ISSUES_PER_KIND, Issue
from pointseg.data.s3dis.parse import PARSER_TIER, parse_annotation_file
from pointseg.data.s3dis.prepare import (
    INDEX_WRITE_INTERVAL,
    PrepareResult,
    find_area_root,
    format_summary,
    prepare_s3dis,
)
from pointseg.data.s3dis.room import RoomData, RoomError, parse_room

__all__ = [
    "CLASSES",
    "CLASS_COLORS",
    "CLASS_TO_ID",
    "CLUTTER_ID",
    "NUM_CLASSES",
    "Issue",
    "PrepareResult",
    "RoomData",
    "RoomError",
    "class_name_to_id",
    "find_area_root",
    "format_summary",
    "list_rooms",
    "load_room",
    "normalize_area",
    "parse_annotation_file",
    "parse_room",
    "prepare_s3dis",
    "read_index",
    "save_room",
    "CACHE_KEYS",
    "INDEX_NAME",
    "INDEX_VERSION",
    "INDEX_WRITE_INTERVAL",
    "MAX_LINE_ISSUES_PER_KIND",
    "PARSER_TIER",
    "REPORT_NAME",
]
