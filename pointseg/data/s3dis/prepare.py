"""`prepare_s3dis`: every raw room → the room cache, in parallel processes, resumable.

Rooms already in the index whose npz still has the recorded size + sha256 and whose raw files are
unchanged are skipped; a room that fails is recorded with its reason while the others complete.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pointseg.data.areas import AREA_DIR_RE, natural_key, normalize_area
from pointseg.data.s3dis.cache import INDEX_NAME, INDEX_VERSION, REPORT_NAME, read_index, save_room
from pointseg.data.s3dis.classes import CLASSES
from pointseg.data.s3dis.issues import Issue
from pointseg.data.s3dis.room import parse_room
from pointseg.errors import DataError
from pointseg.io import atomic_write_text, remove_stale_temps
from pointseg.runtime.hashing import file_sha256

# Seconds between index.json rewrites while rooms complete (and always at the end / on Ctrl-C).
INDEX_WRITE_INTERVAL = 1.0


def find_area_root(raw: str | os.PathLike) -> Path:
    """The folder holding ``Area_N`` folders: ``raw`` itself, or a ``Stanford3dDataset_v1.2*``
    (aligned or not) folder at most two levels below it."""
    raw = Path(raw)
    if not raw.is_dir():
        raise DataError(f"--raw {raw}: not a folder")

    def has_areas(p: Path) -> bool:
        # Area_N folders holding room folders (a pointseg cache's Area_N hold only .npz files).
        return any(
            c.is_dir() and AREA_DIR_RE.match(c.name) and any(r.is_dir() for r in c.iterdir())
            for c in p.iterdir()
        )

    if has_areas(raw):
        return raw
    found = []
    for child in sorted(raw.iterdir()):
        if not child.is_dir():
            continue
        if has_areas(child):
            found.append(child)
            continue
        found += [g for g in sorted(child.iterdir()) if g.is_dir() and has_areas(g)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(
            f"--raw {raw}: no Area_N folders found (expected Stanford3dDataset_v1.2_Aligned_Version/"
            "Area_N/<room>/Annotations/ or a folder containing Area_N/)"
        )
    raise DataError(
        f"--raw {raw}: several datasets found ({', '.join(str(f) for f in found)}); pass one of them"
    )


@dataclasses.dataclass
class RoomTask:
    area: str
    room: str
    room_dir: str
    out_file: str  # relative to out
    out: str


@dataclasses.dataclass
class PrepareResult:
    """Outcome of :func:`prepare_s3dis`."""

    out: Path
    done: list[dict[str, Any]]  # index entries prepared in this run
    skipped: list[dict[str, Any]]  # entries already done and verified
    failed: list[dict[str, Any]]  # {"area", "room", "reason"}
    issues: list[Issue]  # every issue of every room in the index + failed rooms
    seconds: float
    bytes_read: int

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def report_path(self) -> Path:
        return self.out / REPORT_NAME


def _source_fingerprint(room_dir: Path) -> dict[str, int]:
    """Sizes and mtimes of the annotation files: a changed raw room is re-prepared."""
    ann = room_dir / "Annotations"
    size = count = mtime = 0
    if ann.is_dir():
        for p in ann.iterdir():
            if p.is_file():
                st = p.stat()
                size += st.st_size
                count += 1
                mtime = max(mtime, st.st_mtime_ns)
    return {"files": count, "bytes": size, "mtime_ns": mtime}


def _verify(entry: dict[str, Any], out: Path, source: dict[str, int]) -> bool:
    """A cached room is done if its npz has the recorded size and checksum and the raw room is unchanged."""
    path = out / entry.get("file", "")
    try:
        if path.stat().st_size != entry.get("bytes"):
            return False
    except OSError:
        return False
    return entry.get("source") == source and file_sha256(path) == entry.get("sha256")


def _prepare_room(task: RoomTask) -> dict[str, Any]:
    """Worker: parse one room and write its npz. Never raises (the failure is returned)."""
    t0 = time.perf_counter()
    room_dir = Path(task.room_dir)
    try:
        source = _source_fingerprint(room_dir)
        data, issues = parse_room(room_dir)
        path = Path(task.out) / task.out_file
        remove_stale_temps(path)
        save_room(path, data)
        entry = {
            "area": task.area,
            "room": task.room,
            "file": task.out_file,
            "points": data.num_points,
            "histogram": data.histogram(),
            "instances": len(data.objects),
            "objects": data.objects,
            "bytes": path.stat().st_size,
            "sha256": file_sha256(path),
            "source": source,
            "issues": [i.to_dict() for i in issues],
        }
        return {
            "ok": True,
            "entry": entry,
            "seconds": time.perf_counter() - t0,
            "bytes_read": source["bytes"],
        }
    except Exception as exc:  # one room fails alone, with the reason
        issues = list(getattr(exc, "issues", []))
        reason = str(exc) if isinstance(exc, DataError) else f"{type(exc).__name__}: {exc}"
        for i in issues:
            i.area, i.room = task.area, task.room
        issues.append(
            Issue(
                "room-failed",
                "room failed",
                reason,
                file=f"{task.area}/{task.room}",
                area=task.area,
                room=task.room,
            )
        )
        return {
            "ok": False,
            "area": task.area,
            "room": task.room,
            "reason": reason,
            "issues": [i.to_dict() for i in issues],
            "seconds": time.perf_counter() - t0,
            "bytes_read": 0,
        }


def _write_index(
    out: Path, rooms: dict[tuple[str, str], dict[str, Any]], raw: Path, failed: list[dict]
) -> None:
    entries = sorted(rooms.values(), key=lambda e: (natural_key(e["area"]), natural_key(e["room"])))
    index = {
        "version": INDEX_VERSION,
        "classes": list(CLASSES),
        "raw": str(raw),
        "rooms": entries,
        "failed": failed,
    }
    atomic_write_text(out / INDEX_NAME, json.dumps(index, indent=1) + "\n")


def prepare_s3dis(
    raw: str | os.PathLike,
    out: str | os.PathLike,
    areas: Sequence[int | str] | None = None,
    workers: int = 1,
    *,
    force: bool = False,
    progress: bool = True,
) -> PrepareResult:
    """Parse every raw room into ``<out>/Area_N/<room>.npz`` and maintain ``<out>/index.json``.

    Rooms run in ``workers`` processes (1 = in this process). Rooms already in the index whose
    npz still has the recorded size + sha256 and whose raw files are unchanged are skipped unless
    ``force``. The index is rewritten atomically as rooms complete (at most ``INDEX_WRITE_INTERVAL``
    s apart, and at the end or on an interruption), so an interrupted run resumes.
    A room that fails is recorded with its reason; the others complete. All issues go to
    ``<out>/prepare_report.jsonl``.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    area_root = find_area_root(raw)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = None if areas is None else {normalize_area(a) for a in areas}
    area_dirs = sorted(
        (p for p in area_root.iterdir() if p.is_dir() and AREA_DIR_RE.match(p.name)),
        key=lambda p: natural_key(p.name),
    )
    if wanted is not None:
        missing = sorted(wanted - {p.name for p in area_dirs}, key=natural_key)
        if missing:
            raise DataError(
                f"{area_root}: no folder for {', '.join(missing)} (found {[p.name for p in area_dirs]})"
            )
        area_dirs = [p for p in area_dirs if p.name in wanted]

    old: dict[tuple[str, str], dict[str, Any]] = {}
    if (out / INDEX_NAME).exists():
        try:
            old = {(e["area"], e["room"]): e for e in read_index(out)["rooms"]}
        except DataError:
            old = {}  # unreadable index: everything is redone and the index rewritten

    rooms = dict(old)  # entries of other areas stay in the index
    tasks: list[RoomTask] = []
    skipped: list[dict[str, Any]] = []
    for area_dir in area_dirs:
        for room_dir in sorted(
            (p for p in area_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: natural_key(p.name),
        ):
            key = (area_dir.name, room_dir.name)
            entry = old.get(key)
            if (
                entry is not None
                and not force
                and _verify(entry, out, _source_fingerprint(room_dir))
            ):
                skipped.append(entry)
                continue
            rooms.pop(key, None)  # stale until re-prepared
            rel = f"{area_dir.name}/{room_dir.name}.npz"
            tasks.append(RoomTask(area_dir.name, room_dir.name, str(room_dir), rel, str(out)))
    if not tasks and not skipped:
        raise DataError(f"{area_root}: no room folders found under the selected areas")

    failed: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    bytes_read = 0
    _write_index(out, rooms, area_root, failed)  # drops the entries of rooms about to be redone
    last_write = time.monotonic()
    bar = tqdm(
        total=len(tasks), desc="prepare s3dis", unit="room", disable=not progress or not tasks
    )
    if workers > 1 and len(tasks) > 1:
        # Largest rooms first (longest-processing-time order): a multi-million-point hall
        # started last would leave the other workers idle at the end.
        tasks.sort(key=lambda t: -_source_fingerprint(Path(t.room_dir))["bytes"])
        ctx = multiprocessing.get_context()
        pool = ctx.Pool(min(workers, len(tasks)))
        results = pool.imap_unordered(_prepare_room, tasks)
    else:
        pool = None
        results = map(_prepare_room, tasks)
    try:
        for res in results:
            bytes_read += res["bytes_read"]
            if res["ok"]:
                entry = res["entry"]
                rooms[(entry["area"], entry["room"])] = entry
                done.append(entry)
                bar.set_postfix_str(f"{entry['area']}/{entry['room']} {entry['points']:,} pts")
            else:
                failed.append({k: res[k] for k in ("area", "room", "reason", "issues")})
                bar.set_postfix_str(f"{res['area']}/{res['room']} FAILED")
            bar.update(1)
            # Every room lands in the index within INDEX_WRITE_INTERVAL s (each write is an
            # fsync'ed atomic replace: per room it would dominate runs of many small rooms).
            if time.monotonic() - last_write >= INDEX_WRITE_INTERVAL:
                _write_index(out, rooms, area_root, failed)
                last_write = time.monotonic()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        # Also on Ctrl-C or an error: the rooms finished so far are kept for the next run.
        _write_index(out, rooms, area_root, failed)

    issues = [
        Issue.from_dict(d)
        for e in sorted(
            rooms.values(), key=lambda e: (natural_key(e["area"]), natural_key(e["room"]))
        )
        for d in e.get("issues", [])
    ]
    issues += [Issue.from_dict(d) for f in failed for d in f["issues"]]
    text = "".join(json.dumps(i.to_dict()) + "\n" for i in issues)
    atomic_write_text(out / REPORT_NAME, text)
    return PrepareResult(
        out=out,
        done=done,
        skipped=skipped,
        failed=failed,
        issues=issues,
        seconds=time.perf_counter() - t0,
        bytes_read=bytes_read,
    )


def format_summary(result: PrepareResult, *, max_issues: int = 20) -> str:
    """End-of-run summary: a per-area table, failed rooms with reasons, issue counts and examples."""
    lines = []
    per_area: dict[str, dict[str, int]] = {}
    for status, entries in (
        ("done", result.done),
        ("skipped", result.skipped),
        ("failed", result.failed),
    ):
        for e in entries:
            row = per_area.setdefault(
                e["area"], {"done": 0, "skipped": 0, "failed": 0, "points": 0}
            )
            row[status] += 1
            row["points"] += int(e.get("points", 0))
    lines.append(f"{'area':<8} {'done':>5} {'skipped':>8} {'failed':>7} {'points':>13}")
    for area in sorted(per_area, key=natural_key):
        r = per_area[area]
        lines.append(
            f"{area:<8} {r['done']:>5} {r['skipped']:>8} {r['failed']:>7} {r['points']:>13,}"
        )
    total = {
        k: sum(r[k] for r in per_area.values()) for k in ("done", "skipped", "failed", "points")
    }
    lines.append(
        f"{'total':<8} {total['done']:>5} {total['skipped']:>8} {total['failed']:>7} {total['points']:>13,}"
    )
    mb = result.bytes_read / 1e6
    rate = f", {mb / result.seconds:.1f} MB/s" if result.seconds > 0 and mb else ""
    lines.append(f"read {mb:.1f} MB in {result.seconds:.1f} s{rate}")
    if result.failed:
        lines.append(f"FAILED rooms ({len(result.failed)}):")
        for f in result.failed:
            lines.append(f"  {f['area']}/{f['room']}: {f['reason']}")
    line_issues = [i for i in result.issues if i.kind != "room-failed"]
    if line_issues:
        counts: Counter[tuple[str, str]] = Counter()
        for i in line_issues:
            counts[(i.kind, i.action.split(" (")[0])] += i.count
        lines.append(f"issues ({sum(counts.values())}; every one listed in {result.report_path}):")
        for (kind, action), n in sorted(counts.items()):
            lines.append(f"  {n:>8}  {kind:<20} {action}")
        for i in line_issues[:max_issues]:
            lines.append(f"  {i}")
        if len(line_issues) > max_issues:
            lines.append(f"  ... {len(line_issues) - max_issues} more in {result.report_path}")
    return "\n".join(lines)
