"""One raw S3DIS room (``<room>/Annotations/<class>_<k>.txt``) → one labelled room (`parse_room`).

Every annotation file becomes one object: its points get the semantic label of the file-name
prefix (unknown prefixes such as ``stairs`` become clutter) and a per-room running instance id.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from pointseg.data.areas import natural_key
from pointseg.data.s3dis.classes import CLASS_TO_ID, CLASSES, NUM_CLASSES, class_name_to_id
from pointseg.data.s3dis.issues import Issue
from pointseg.data.s3dis.parse import parse_annotation_file
from pointseg.errors import DataError


@dataclasses.dataclass
class RoomData:
    """One parsed room. Arrays: xyz float32 (n, 3), rgb uint8 (n, 3), label uint8 (n,),
    instance int32 (n,) = running id (0-based, natural file order) of the annotation file within
    the room; files that contribute no point (empty, skipped duplicates) get no id."""

    area: str
    room: str
    xyz: np.ndarray
    rgb: np.ndarray
    label: np.ndarray
    instance: np.ndarray
    objects: list[dict[str, Any]]  # per instance: {"file", "class", "points"}

    @property
    def num_points(self) -> int:
        return int(self.xyz.shape[0])

    def histogram(self) -> list[int]:
        return np.bincount(self.label, minlength=NUM_CLASSES).tolist()


class RoomError(DataError):
    """A room that cannot be prepared; carries the issues found before the failure."""

    def __init__(self, message: str, issues: list[Issue] | None = None):
        super().__init__(message)
        self.issues = issues or []


_DUPLICATE_RE = re.compile(r"^(?P<base>.+?) \((?P<n>\d+)\)$")  # `wall_3 (1)` -> `wall_3`


def _file_order(path: Path) -> tuple:
    """Natural order of annotation files, a copy `wall_3 (1).txt` right after `wall_3.txt`."""
    dup = _DUPLICATE_RE.match(path.stem)
    base, n = (dup["base"], int(dup["n"])) if dup else (path.stem, 0)
    return (natural_key(base), n, path.name)


def parse_room(room_dir: str | os.PathLike) -> tuple[RoomData, list[Issue]]:
    """Parse ``<room_dir>/Annotations/*.txt`` into one labelled room.

    Files are taken in natural name order; each one is an instance. The label is the file-name
    prefix before the first ``_`` (unknown prefixes -> clutter, reported). A duplicate download
    such as ``wall_3 (1).txt`` is skipped if byte-identical to ``wall_3.txt``, otherwise kept as
    its own instance; both cases are reported. Raises :class:`RoomError` (a ``DataError``) if the
    room has no ``Annotations/`` folder, no annotation files, or no valid points.
    """
    room_dir = Path(room_dir)
    area, room = room_dir.parent.name, room_dir.name
    issues: list[Issue] = []
    ann = room_dir / "Annotations"
    if not ann.is_dir():
        hint = ""
        if (room_dir / f"{room}.txt").is_file():
            hint = f"; the room-level {room}.txt has no labels, so it cannot replace them"
        raise RoomError(
            f"{room_dir}: missing Annotations/ folder (expected Annotations/<class>_<i>.txt){hint}"
        )
    entries = sorted(ann.iterdir(), key=_file_order)
    files = [
        p
        for p in entries
        if p.is_file() and p.suffix.lower() == ".txt" and not p.name.startswith(".")
    ]
    for p in entries:
        if p in files or p.name == ".DS_Store":
            continue
        # e.g. macOS `._wall_1.txt` resource forks unpacked from an archive, notes, folders
        why = (
            "hidden file (e.g. a macOS ._ resource fork)"
            if p.name.startswith(".")
            else "not a .txt annotation file"
        )
        issues.append(Issue("ignored-file", "ignored", why, file=_rel(p, room_dir)))
    if not files:
        raise RoomError(f"{ann}: no <class>_<i>.txt annotation files")
    stems = {p.stem for p in files}

    xyz_parts, rgb_parts, label_parts, instance_parts = [], [], [], []
    objects: list[dict[str, Any]] = []
    for path in files:
        rel = _rel(path, room_dir)
        stem = path.stem
        dup = _DUPLICATE_RE.match(stem)
        if dup and dup["base"] in stems:
            original = ann / f"{dup['base']}{path.suffix}"
            if _same_bytes(path, original):
                issues.append(
                    Issue(
                        "duplicate-file",
                        "skipped file",
                        f"byte-identical copy of {original.name}",
                        file=rel,
                    )
                )
                continue
            issues.append(
                Issue(
                    "duplicate-file",
                    "kept as a separate object",
                    f"named like a copy of {original.name} but the contents differ",
                    file=rel,
                )
            )
        if dup:
            if dup["base"] not in stems:
                issues.append(
                    Issue(
                        "duplicate-file",
                        "used as the object",
                        f"named like a copy of {dup['base']}{path.suffix}, which is missing",
                        file=rel,
                    )
                )
            stem = dup["base"]
        prefix = stem.split("_")[0]
        label = class_name_to_id(prefix)
        if prefix.lower() not in CLASS_TO_ID:
            issues.append(
                Issue(
                    "unknown-class",
                    "mapped to clutter",
                    f"unknown class prefix {prefix!r}",
                    file=rel,
                )
            )
        try:
            xyz, rgb, file_issues = parse_annotation_file(path, name=rel)
        except OSError as exc:
            raise RoomError(f"{path}: cannot read: {exc.strerror or exc}", issues) from exc
        issues.extend(file_issues)
        n = xyz.shape[0]
        if n == 0:
            if not any(i.kind == "empty-file" for i in file_issues):
                issues.append(
                    Issue("no-valid-points", "skipped file", "no valid line in file", file=rel)
                )
            continue
        instance_id = len(objects)
        objects.append({"file": path.name, "class": CLASSES[label], "points": int(n)})
        xyz_parts.append(xyz)
        rgb_parts.append(rgb)
        label_parts.append(np.full(n, label, np.uint8))
        instance_parts.append(np.full(n, instance_id, np.int32))
    for issue in issues:
        issue.area, issue.room = area, room
    if not objects:
        raise RoomError(f"{ann}: no valid points in {len(files)} annotation file(s)", issues)
    data = RoomData(
        area=area,
        room=room,
        xyz=np.concatenate(xyz_parts),
        rgb=np.concatenate(rgb_parts),
        label=np.concatenate(label_parts),
        instance=np.concatenate(instance_parts),
        objects=objects,
    )
    return data, issues


def _rel(path: Path, room_dir: Path) -> str:
    """``Area_N/<room>/Annotations/<file>``: the path users see in reports."""
    try:
        return str(path.relative_to(room_dir.parent.parent))
    except ValueError:
        return str(path)


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return a.read_bytes() == b.read_bytes()
