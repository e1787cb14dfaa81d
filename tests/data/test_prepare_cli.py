"""`pointseg prepare s3dis` end to end: real rooms, resume, failing rooms, crashes, workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pointseg.cli import main
from pointseg.data import s3dis
from pointseg.data.s3dis import (
    find_area_root,
    list_rooms,
    load_room,
    prepare_s3dis,
    read_index,
)
from pointseg.data.s3dis import prepare as s3dis_prepare
from pointseg.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
RAW = ROOT / ".." / "shared" / "data" / "s3dis_raw"
REAL_COUNTS = {
    "Area_1/conferenceRoom_1": 120_000,
    "Area_1/hallway_1": 69_370,
    "Area_5/conferenceRoom_1": 309_431,
    "Area_5/copyRoom_1": 70_904,
}


def lines(n: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-5, 5, (n, 3))
    col = rng.integers(0, 256, (n, 3))
    return "".join(
        f"{x:.3f} {y:.3f} {z:.3f} {r} {g} {b}\n"
        for (x, y, z), (r, g, b) in zip(xyz, col, strict=True)
    ).encode()


def write_room(root: Path, area: str, room: str, files: dict[str, bytes] | None) -> Path:
    room_dir = root / area / room
    room_dir.mkdir(parents=True)
    if files is not None:
        (room_dir / "Annotations").mkdir()
        for name, content in files.items():
            (room_dir / "Annotations" / name).write_bytes(content)
    return room_dir


def synthetic_raw(root: Path) -> Path:
    raw = root / "raw"
    write_room(raw, "Area_1", "office_1", {"wall_1.txt": lines(40, 1), "floor_1.txt": lines(30, 2)})
    write_room(
        raw, "Area_1", "office_2", {"chair_1.txt": lines(20, 3), "table_1.txt": lines(10, 4)}
    )
    write_room(
        raw, "Area_2", "hallway_1", {"ceiling_1.txt": lines(25, 5), "stairs_1.txt": lines(5, 6)}
    )
    return raw


def run_cli(*args: str) -> int:
    return main(["prepare", "s3dis", "--no-progress", *args])


def room_files(out: Path) -> dict[str, float]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.rglob("*.npz"))}


# ---------------------------------------------------------------------------------------------


def test_cli_real_rooms_end_to_end_and_resume(tmp_path, capsys):
    if not RAW.is_dir():
        pytest.skip(f"real S3DIS sample not found at {RAW}")
    out = tmp_path / "s3dis"
    assert run_cli("--raw", str(RAW), "--out", str(out), "--workers", "1") == 0
    stdout = capsys.readouterr().out
    assert "total        4        0       0       569,705" in stdout

    index = read_index(out)
    assert index["version"] == 1 and index["classes"] == list(s3dis.CLASSES)
    assert {f"{e['area']}/{e['room']}": e["points"] for e in index["rooms"]} == REAL_COUNTS
    for entry in list_rooms(out):
        room = load_room(entry["path"])
        n = REAL_COUNTS[f"{entry['area']}/{entry['room']}"]
        assert room["xyz"].shape == (n, 3) and room["label"].shape == (n,)
        assert np.bincount(room["label"], minlength=13).tolist() == entry["histogram"]
        assert entry["file"] == f"{entry['area']}/{entry['room']}.npz"
        assert entry["issues"] == []
    # The Area_1 conference room is two beams and two walls (file names): 60,000 points each.
    conf = next(
        e for e in index["rooms"] if (e["area"], e["room"]) == ("Area_1", "conferenceRoom_1")
    )
    assert conf["histogram"][s3dis.CLASSES.index("beam")] == 60_000
    assert conf["histogram"][s3dis.CLASSES.index("wall")] == 60_000
    assert [e["room"] for e in list_rooms(out, [5])] == ["conferenceRoom_1", "copyRoom_1"]
    assert [e["room"] for e in list_rooms(out, ["Area_1"])] == ["conferenceRoom_1", "hallway_1"]
    assert (out / "prepare_report.jsonl").read_text() == ""

    # Resume: everything verified and skipped, nothing rewritten.
    before = room_files(out)
    assert run_cli("--raw", str(RAW), "--out", str(out)) == 0
    assert "total        0        4       0       569,705" in capsys.readouterr().out
    assert room_files(out) == before

    # A damaged cache file (same size, other bytes) fails verification and is redone.
    victim = out / "Area_1" / "hallway_1.npz"
    blob = bytearray(victim.read_bytes())
    blob[-100] ^= 0xFF
    victim.write_bytes(bytes(blob))
    result = prepare_s3dis(RAW, out, progress=False)
    assert [(e["area"], e["room"]) for e in result.done] == [("Area_1", "hallway_1")]
    assert len(result.skipped) == 3
    assert load_room(victim)["xyz"].shape == (69_370, 3)

    # --force redoes every selected room; --raw may point at a folder holding the dataset.
    assert run_cli("--raw", str(RAW.parent), "--out", str(out), "--areas", "1", "--force") == 0
    assert "Area_1       2        0       0       189,370" in capsys.readouterr().out
    assert len(read_index(out)["rooms"]) == 4  # Area_5 entries kept


def test_failing_room_does_not_stop_the_others(tmp_path, capsys):
    raw = synthetic_raw(tmp_path)
    write_room(raw, "Area_1", "broken_1", None)  # no Annotations/
    write_room(raw, "Area_2", "garbage_1", {"wall_1.txt": b"hello world\n"})
    (raw / "Area_2" / "hallway_1" / "Annotations" / "ceiling_1.txt").write_bytes(
        lines(3, 7) + b"1.5 2.5 3.5 185\x00187 188\n" + lines(2, 8)
    )
    out = tmp_path / "out"
    assert run_cli("--raw", str(raw), "--out", str(out), "--workers", "2") == 1
    captured = capsys.readouterr()
    assert "2 room(s) failed" in captured.err
    assert "Area_1/broken_1: " in captured.out and "missing Annotations/" in captured.out
    assert "Area_2/garbage_1: " in captured.out and "no valid points" in captured.out
    assert "Area_1       2        0       1" in captured.out

    index = read_index(out)
    assert sorted(e["room"] for e in index["rooms"]) == ["hallway_1", "office_1", "office_2"]
    assert sorted(f["room"] for f in index["failed"]) == ["broken_1", "garbage_1"]
    assert not (out / "Area_1" / "broken_1.npz").exists()
    hall = load_room(out / "Area_2" / "hallway_1.npz")
    assert hall["xyz"].shape == (6 + 5, 3)
    assert hall["rgb"][3].tolist() == [185, 187, 188]  # the repaired line

    report = [json.loads(line) for line in (out / "prepare_report.jsonl").read_text().splitlines()]
    repaired = [r for r in report if r["kind"] == "control-byte"]
    assert len(repaired) == 1
    assert repaired[0]["file"] == "Area_2/hallway_1/Annotations/ceiling_1.txt"
    assert repaired[0]["line"] == 4 and repaired[0]["action"].startswith("repaired")
    assert repaired[0]["raw"] == "1.5 2.5 3.5 185\\x00187 188"
    kinds = {(r.get("room"), r["kind"]) for r in report}
    assert {
        ("broken_1", "room-failed"),
        ("garbage_1", "room-failed"),
        ("garbage_1", "not-numeric"),
    } <= kinds
    assert ("hallway_1", "unknown-class") in kinds  # stairs -> clutter
    assert "control-byte" in captured.out  # the summary lists issue kinds too

    # Fix the broken room: only it (and the still broken one) are attempted again.
    (raw / "Area_1" / "broken_1" / "Annotations").mkdir()
    (raw / "Area_1" / "broken_1" / "Annotations" / "door_1.txt").write_bytes(lines(9, 9))
    result = prepare_s3dis(raw, out, progress=False)
    assert sorted(e["room"] for e in result.done) == ["broken_1"]
    assert sorted(e["room"] for e in result.skipped) == ["hallway_1", "office_1", "office_2"]
    assert [f["room"] for f in result.failed] == ["garbage_1"]


def test_parallel_equals_serial_and_changed_raw_is_redone(tmp_path):
    raw = synthetic_raw(tmp_path)
    serial = prepare_s3dis(raw, tmp_path / "a", workers=1, progress=False)
    parallel = prepare_s3dis(raw, tmp_path / "b", workers=2, progress=False)
    assert serial.ok and parallel.ok and len(parallel.done) == 3
    ia, ib = read_index(tmp_path / "a"), read_index(tmp_path / "b")
    strip = [{k: v for k, v in e.items() if k != "source"} for e in ia["rooms"]]
    assert strip == [{k: v for k, v in e.items() if k != "source"} for e in ib["rooms"]]
    for e in ia["rooms"]:
        a, b = load_room(tmp_path / "a" / e["file"]), load_room(tmp_path / "b" / e["file"])
        for key in s3dis.CACHE_KEYS:
            np.testing.assert_array_equal(a[key], b[key])
    office = load_room(tmp_path / "a" / "Area_1" / "office_1.npz")
    # Natural order floor_1, wall_1 -> instances 0, 1; labels from the names.
    assert np.bincount(office["instance"]).tolist() == [30, 40]
    assert office["label"][:30].tolist() == [1] * 30 and office["label"][30:].tolist() == [2] * 40

    # Raw room edited after preparing: its fingerprint changes, it is redone.
    f = raw / "Area_1" / "office_2" / "Annotations" / "chair_1.txt"
    f.write_bytes(f.read_bytes() + lines(5, 11))
    result = prepare_s3dis(raw, tmp_path / "a", progress=False)
    assert [e["room"] for e in result.done] == ["office_2"]
    assert result.done[0]["points"] == 35


def test_simulated_crash_leaves_no_partial_file(tmp_path, monkeypatch):
    raw = synthetic_raw(tmp_path)
    out = tmp_path / "out"
    real_savez = np.savez

    def crash(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")  # partial bytes reach the temp file
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", crash)
    result = prepare_s3dis(raw, out, progress=False)
    assert len(result.failed) == 3 and "No space left on device" in result.failed[0]["reason"]
    # Neither a final npz nor a temp file is left behind.
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "index.json",
        "prepare_report.jsonl",
    ]
    assert read_index(out)["rooms"] == []

    # Interrupted run (Ctrl-C after the first room): the index already lists that room.
    monkeypatch.setattr(np, "savez", real_savez)
    real_prepare = s3dis_prepare._prepare_room
    calls = []

    def interrupt_second(task):
        calls.append(task.room)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_prepare(task)

    monkeypatch.setattr(s3dis_prepare, "_prepare_room", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        prepare_s3dis(raw, out, progress=False)
    assert [e["room"] for e in read_index(out)["rooms"]] == ["office_1"]
    monkeypatch.setattr(s3dis_prepare, "_prepare_room", real_prepare)
    result = prepare_s3dis(raw, out, progress=False)
    assert [e["room"] for e in result.skipped] == ["office_1"]
    assert sorted(e["room"] for e in result.done) == ["hallway_1", "office_2"]


def test_hard_kill_mid_write_then_resume(tmp_path):
    """A process killed inside np.savez of its second room: the first room is in the index
    (per-room index updates), the second has neither a final npz nor an index entry."""
    raw = synthetic_raw(tmp_path)
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import os, numpy as np
        from pointseg.data.s3dis import prepare as s3dis_prepare
        real_savez, calls = np.savez, []
        def die_on_second(fh, **arrays):
            calls.append(1)
            if len(calls) == 1:
                return real_savez(fh, **arrays)
            fh.write(b"PK partial")
            fh.flush()
            os._exit(9)
        np.savez = die_on_second
        s3dis_prepare.INDEX_WRITE_INTERVAL = 0.0  # index rewritten after every room
        s3dis_prepare.prepare_s3dis({str(raw)!r}, {str(out)!r}, progress=False)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=120
    )
    assert proc.returncode == 9, proc.stderr
    assert [p.name for p in out.rglob("*.npz")] == ["office_1.npz"]
    assert len(list(out.rglob(".office_2.npz.*.tmp"))) == 1  # the orphan temp file
    assert [e["room"] for e in read_index(out)["rooms"]] == ["office_1"]
    result = prepare_s3dis(raw, out, progress=False)
    assert result.ok and [e["room"] for e in result.skipped] == ["office_1"]
    assert sorted(e["room"] for e in result.done) == ["hallway_1", "office_2"]
    assert list(out.rglob("*.tmp")) == []  # orphan cleaned when its room was redone


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    raw = synthetic_raw(tmp_path)
    out = str(tmp_path / "o")
    cases = [
        (["--raw", str(raw), "--out", out, "--areas", "9"], "no folder for Area_9"),
        (["--raw", str(raw), "--out", out, "--areas", "one"], "--areas: bad S3DIS area"),
        (["--raw", str(raw), "--out", out, "--workers", "0"], "--workers must be >= 1"),
        (["--raw", str(raw / "Area_1"), "--out", out], "no Area_N folders"),
    ]
    for args, message in cases:
        assert run_cli(*args) == 1, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    # The real entry point, in a fresh interpreter: one line on stderr, no traceback.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pointseg",
            "prepare",
            "s3dis",
            "--raw",
            str(tmp_path / "missing"),
            "--out",
            out,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr == f"error: --raw {tmp_path / 'missing'}: not a folder\n"


def test_find_area_root_layouts(tmp_path):
    aligned = tmp_path / "dl" / "Stanford3dDataset_v1.2_Aligned_Version"
    write_room(aligned, "Area_1", "office_1", {"wall_1.txt": lines(3)})
    assert find_area_root(tmp_path / "dl") == aligned
    assert find_area_root(aligned) == aligned
    assert find_area_root(tmp_path) == aligned  # two levels down
    plain = tmp_path / "dl" / "Stanford3dDataset_v1.2"
    write_room(plain, "Area_2", "office_1", {"wall_1.txt": lines(3)})
    with pytest.raises(DataError, match="several datasets found"):
        find_area_root(tmp_path / "dl")
    assert prepare_s3dis(plain, tmp_path / "o", progress=False).ok
    # A cache written next to the raw data is not mistaken for a second dataset.
    assert prepare_s3dis(aligned, tmp_path / "dl2" / "s3dis", progress=False).ok
    (tmp_path / "dl2" / "raw").mkdir()
    aligned.rename(tmp_path / "dl2" / "raw" / aligned.name)
    assert find_area_root(tmp_path / "dl2") == tmp_path / "dl2" / "raw" / aligned.name


def test_benchmark_script_runs_on_a_small_raw_folder(tmp_path):
    raw = synthetic_raw(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "prepare.py"),
            "--raw",
            str(raw),
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["identical"] is True and stats["points"] == 40 + 30 + 20 + 10 + 25 + 5
    for key in ("speedup", "speedup_parallel", "speedup_cpu", "baseline_mb_s", "ours_mb_s"):
        assert isinstance(stats[key], float) and stats[key] >= 0, key
    assert "blocks_train_points_per_s" in stats  # the blocks module ran on the prepared rooms
