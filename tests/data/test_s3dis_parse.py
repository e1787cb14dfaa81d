"""S3DIS raw parsing: real rooms, fast path == np.loadtxt, and every documented corruption."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pointseg.data import s3dis
from pointseg.data.s3dis import (
    CLASS_COLORS,
    CLASSES,
    RoomError,
    class_name_to_id,
    load_room,
    parse_annotation_file,
    parse_room,
    save_room,
)
from pointseg.data.s3dis import parse as s3dis_parse
from pointseg.data.s3dis.issues import IssueLog
from pointseg.errors import DataError

RAW = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "s3dis_raw"
REAL_ROOMS = {
    ("Area_1", "conferenceRoom_1"): 120_000,
    ("Area_1", "hallway_1"): 69_370,
    ("Area_5", "conferenceRoom_1"): 309_431,
    ("Area_5", "copyRoom_1"): 70_904,
}


def needs_raw():
    if not RAW.is_dir():
        pytest.skip(f"real S3DIS sample not found at {RAW}")


def write_room(root: Path, area: str, room: str, files: dict[str, bytes]) -> Path:
    ann = root / area / room / "Annotations"
    ann.mkdir(parents=True)
    for name, content in files.items():
        (ann / name).write_bytes(content)
    return root / area / room


def lines(n: int, seed: int = 0, rgb: tuple[int, int] = (0, 256)) -> bytes:
    """n clean `x y z r g b` lines in the Stanford format (3 decimals, integer colours)."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-30, 30, (n, 3))
    col = rng.integers(*rgb, (n, 3))
    return "".join(
        f"{x:.3f} {y:.3f} {z:.3f} {r} {g} {b}\n"
        for (x, y, z), (r, g, b) in zip(xyz, col, strict=True)
    ).encode()


# ---------------------------------------------------------------------------------------------
# class table
# ---------------------------------------------------------------------------------------------


def test_class_table_matches_design():
    assert CLASSES == (
        "ceiling", "floor", "wall", "beam", "column", "window", "door",
        "table", "chair", "sofa", "bookcase", "board", "clutter",
    )  # fmt: skip
    assert CLASS_COLORS.shape == (13, 3) and CLASS_COLORS.dtype == np.uint8
    assert CLASS_COLORS[CLASSES.index("window")].tolist() == [100, 100, 255]
    assert CLASS_COLORS[CLASSES.index("clutter")].tolist() == [50, 50, 50]
    assert CLASS_COLORS[CLASSES.index("chair")].tolist() == [255, 0, 0]
    assert len({tuple(c) for c in CLASS_COLORS.tolist()}) == 13
    assert [class_name_to_id(c) for c in CLASSES] == list(range(13))
    assert class_name_to_id("Chair") == 8
    assert class_name_to_id("stairs") == 12
    with pytest.raises(KeyError, match="stairs"):
        class_name_to_id("stairs", strict=True)


# ---------------------------------------------------------------------------------------------
# real rooms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("area,room", sorted(REAL_ROOMS))
def test_real_room_counts_and_histogram(area, room):
    needs_raw()
    data, issues = parse_room(RAW / area / room)
    assert issues == []
    assert data.num_points == REAL_ROOMS[(area, room)]
    # Expected histogram and instances from the file names and their line counts.
    files = sorted(
        (RAW / area / room / "Annotations").glob("*.txt"),
        key=lambda p: (p.stem.split("_")[0], int(p.stem.split("_")[1])),
    )
    expected = Counter()
    sizes = []
    for f in files:
        n = f.read_bytes().count(b"\n")
        expected[CLASSES.index(f.stem.split("_")[0])] += n
        sizes.append(n)
    assert data.histogram() == [expected[i] for i in range(13)]
    assert np.bincount(data.instance).tolist() == sizes
    assert [o["file"] for o in data.objects] == [f.name for f in files]
    # Each instance carries exactly one label, the one of its file name.
    for i, f in enumerate(files):
        assert set(np.unique(data.label[data.instance == i]).tolist()) == {
            CLASSES.index(f.stem.split("_")[0])
        }
    assert data.xyz.dtype == np.float32 and data.rgb.dtype == np.uint8
    assert data.label.dtype == np.uint8 and data.instance.dtype == np.int32


def test_fast_parse_equals_loadtxt_on_real_files():
    needs_raw()
    for f in sorted(RAW.glob("Area_*/*/Annotations/*.txt"))[::3]:
        ref = np.loadtxt(f)
        assert s3dis_parse._fast_parse(f.read_bytes()) is not None  # clean files take the fast path
        xyz, rgb, issues = parse_annotation_file(f)
        assert issues == []
        np.testing.assert_array_equal(xyz, ref[:, :3].astype(np.float32))
        np.testing.assert_array_equal(rgb, ref[:, 3:].astype(np.uint8))


def test_fast_and_slow_paths_agree(tmp_path):
    # Varied formats: negative numbers, no leading zero, integers, many decimals, no final newline.
    buf = (
        lines(500, seed=3)
        + b"-.5 0.25 7 0 0 0\n12 -3.1415926535 1e-3 255 255 255\n-0 1. 2.000001 1 2 3"
    )
    f = tmp_path / "wall_1.txt"
    f.write_bytes(buf)
    assert s3dis_parse._fast_parse(buf.replace(b"1e-3", b"0.001")) is not None
    xyz, rgb, issues = parse_annotation_file(f)  # 'e' -> slow path
    assert issues == []
    values, numbers = s3dis_parse._slow_parse(buf, IssueLog("x"))
    ref = np.loadtxt(io.BytesIO(buf))
    np.testing.assert_array_equal(values, ref)
    np.testing.assert_array_equal(numbers, np.arange(1, len(ref) + 1))
    np.testing.assert_array_equal(xyz, ref[:, :3].astype(np.float32))
    fast_xyz, fast_rgb = s3dis_parse._fast_parse(buf.replace(b"1e-3", b"0.001"))
    np.testing.assert_array_equal(fast_xyz, xyz)
    np.testing.assert_array_equal(fast_rgb, rgb)


# ---------------------------------------------------------------------------------------------
# corrupt lines: repaired when unambiguous, otherwise skipped, always reported
# ---------------------------------------------------------------------------------------------


def parse_bytes(tmp_path: Path, buf: bytes, name: str = "ceiling_1.txt"):
    f = tmp_path / name
    f.write_bytes(buf)
    return parse_annotation_file(f, name=name)


def test_nul_byte_in_place_of_separator_is_repaired(tmp_path):
    # DESIGN §4: Area_5/hallway_6/Annotations/ceiling_1.txt line 180389 `185\x00187` (five columns).
    buf = lines(3) + b"22.350 6.692 3.061 185\x00187 188\n" + lines(2, seed=1)
    xyz, rgb, issues = parse_bytes(tmp_path, buf)
    assert xyz.shape == (6, 3)
    np.testing.assert_array_equal(xyz[3], np.array([22.350, 6.692, 3.061], np.float32))
    assert rgb[3].tolist() == [185, 187, 188]
    (issue,) = issues
    assert (issue.kind, issue.file, issue.line) == ("control-byte", "ceiling_1.txt", 4)
    assert issue.action.startswith("repaired") and "-> space" in issue.action
    assert "\\x00" in issue.raw and issue.raw.startswith("22.350")


def test_control_byte_inside_number_is_repaired(tmp_path):
    # DESIGN §4: non-aligned Area_5/office_19 ceiling_1.txt line 323474 `103.0\x100000`.
    buf = lines(2) + b"-10.5 4.25 103.0\x100000 120 110 100\n"
    xyz, rgb, issues = parse_bytes(tmp_path, buf)
    assert xyz.shape == (3, 3)
    assert xyz[2].tolist() == [-10.5, 4.25, 103.0]
    assert rgb[2].tolist() == [120, 110, 100]
    (issue,) = issues
    assert (issue.kind, issue.line) == ("control-byte", 3)
    assert issue.action.startswith("repaired") and "deleted" in issue.action
    assert "\\x10" in issue.raw


def test_ambiguous_control_bytes_are_skipped(tmp_path):
    # Two stray bytes: "1 2 3 4 56 7" and "12 3 4 5 6 7" both read as six numbers.
    buf = lines(2) + b"1\x002 3 4 5\x006 7\n" + lines(1, seed=5)
    xyz, _, issues = parse_bytes(tmp_path, buf)
    assert xyz.shape == (3, 3)
    (issue,) = issues
    assert (issue.kind, issue.action, issue.line) == ("control-byte", "skipped line", 3)
    assert "ambiguous" in issue.message


@pytest.mark.parametrize(
    "bad,kind,action",
    [
        (b"1.0 2.0 3.0 4 5\n", "bad-columns", "skipped line"),
        (b"1.0 2.0 3.0 4 5 6 7\n", "bad-columns", "skipped line"),
        (b"x y z r g b\n", "not-numeric", "skipped line"),
        (b"1.0 2.0 abc 4 5 6\n", "not-numeric", "skipped line"),
        (b"1.0 nan 3.0 4 5 6\n", "non-finite", "skipped line"),
        (b"1.0 2.0 inf 4 5 6\n", "non-finite", "skipped line"),
        (b"1.0 2.0 1e60 4 5 6\n", "non-finite", "skipped line"),  # finite in float64, not float32
        (b"\n", "blank-line", "skipped line"),
        (b"\x00\x00\x00\x00\n", "control-byte", "skipped line"),
    ],
)
def test_bad_line_is_skipped_and_reported(tmp_path, bad, kind, action):
    good = lines(4, seed=2)
    buf = good[: good.index(b"\n", 40) + 1] + bad + good[good.index(b"\n", 40) + 1 :]
    line_no = good[: good.index(b"\n", 40) + 1].count(b"\n") + 1
    xyz, rgb, issues = parse_bytes(tmp_path, buf)
    ref = np.loadtxt(io.BytesIO(good))
    np.testing.assert_array_equal(xyz, ref[:, :3].astype(np.float32))  # the other 4 lines intact
    np.testing.assert_array_equal(rgb, ref[:, 3:].astype(np.uint8))
    (issue,) = issues
    assert (issue.kind, issue.action, issue.line, issue.file) == (
        kind,
        action,
        line_no,
        "ceiling_1.txt",
    )
    assert issue.raw == repr(bad.rstrip(b"\n"))[2:-1]


def test_colour_out_of_range_is_clipped(tmp_path):
    buf = lines(2) + b"1.0 2.0 3.0 300 -4 7\n" + b"1.0 2.0 3.0 12.6 4 7\n"
    xyz, rgb, issues = parse_bytes(tmp_path, buf)
    assert xyz.shape == (4, 3)
    assert rgb[2].tolist() == [255, 0, 7]
    assert rgb[3].tolist() == [13, 4, 7]
    assert [(i.kind, i.line) for i in issues] == [("colour-range", 3), ("colour-fraction", 4)]
    assert issues[0].action == "clipped to 0..255" and "300" in issues[0].message
    assert issues[1].action == "rounded"


def test_windows_line_endings_parse_without_issues(tmp_path):
    good = lines(5)
    xyz, rgb, issues = parse_bytes(tmp_path, good.replace(b"\n", b"\r\n"))
    assert issues == []
    np.testing.assert_array_equal(xyz, np.loadtxt(io.BytesIO(good))[:, :3].astype(np.float32))


def test_many_bad_lines_are_counted_not_dropped(tmp_path):
    n_bad = s3dis.MAX_LINE_ISSUES_PER_KIND + 30
    buf = lines(3) + b"1 2 3 4 5\n" * n_bad
    xyz, _, issues = parse_bytes(tmp_path, buf)
    assert xyz.shape == (3, 3)
    listed = [i for i in issues if i.line is not None]
    summary = [i for i in issues if i.line is None]
    assert len(listed) == s3dis.MAX_LINE_ISSUES_PER_KIND
    assert [i.line for i in listed[:2]] == [4, 5]
    (s,) = summary
    assert s.count == 30 and str(n_bad) in s.message
    assert sum(i.count for i in issues) == n_bad


def test_empty_file(tmp_path):
    xyz, rgb, issues = parse_bytes(tmp_path, b"")
    assert xyz.shape == (0, 3) and rgb.shape == (0, 3)
    assert [(i.kind, i.action) for i in issues] == [("empty-file", "skipped file")]


# ---------------------------------------------------------------------------------------------
# room level
# ---------------------------------------------------------------------------------------------


def test_room_with_duplicates_unknown_prefix_and_empty_file(tmp_path):
    wall = lines(10, seed=1)
    room = write_room(
        tmp_path,
        "Area_3",
        "office_1",
        {
            "wall_3.txt": wall,
            "wall_3 (1).txt": wall,  # byte-identical duplicate: skipped
            "chair_1.txt": lines(4, seed=2),
            "chair_1 (1).txt": lines(5, seed=9),  # same name pattern, different content: kept
            "stairs_1.txt": lines(6, seed=3),  # unknown prefix: clutter
            "door_2.txt": b"",  # empty
            "board_1 (2).txt": lines(3, seed=8),  # a copy whose original is missing: used
            "notes.md": b"hello",
            "._wall_3.txt": b"\x00\x05\x16\x07Mac OS X",  # AppleDouble fork from a tar made on macOS
        },
    )
    data, issues = parse_room(room)
    assert data.num_points == 10 + 4 + 5 + 6 + 3
    by_kind = {(i.kind, i.file.split("/")[-1]): i for i in issues}
    assert by_kind[("duplicate-file", "wall_3 (1).txt")].action == "skipped file"
    assert by_kind[("duplicate-file", "chair_1 (1).txt")].action == "kept as a separate object"
    assert by_kind[("unknown-class", "stairs_1.txt")].action == "mapped to clutter"
    assert by_kind[("empty-file", "door_2.txt")].action == "skipped file"
    assert ("ignored-file", "notes.md") in by_kind
    assert by_kind[("duplicate-file", "board_1 (2).txt")].action == "used as the object"
    assert "resource fork" in by_kind[("ignored-file", "._wall_3.txt")].message
    assert all(i.area == "Area_3" and i.room == "office_1" for i in issues)
    assert (
        by_kind[("unknown-class", "stairs_1.txt")].file
        == "Area_3/office_1/Annotations/stairs_1.txt"
    )
    hist = data.histogram()
    assert hist[CLASSES.index("wall")] == 10
    assert hist[CLASSES.index("chair")] == 9
    assert hist[CLASSES.index("clutter")] == 6
    assert sum(hist) == data.num_points
    # Natural order: board_1 (2), chair_1, chair_1 (1), stairs_1, wall_3 -> instances 0..4.
    assert hist[CLASSES.index("board")] == 3
    assert [o["file"] for o in data.objects][1:] == [
        "chair_1.txt",
        "chair_1 (1).txt",
        "stairs_1.txt",
        "wall_3.txt",
    ]
    assert data.objects[0]["file"] == "board_1 (2).txt"
    assert np.bincount(data.instance).tolist() == [3, 4, 5, 6, 10]


def test_missing_annotations_and_unreadable_rooms(tmp_path):
    (tmp_path / "Area_1" / "office_1").mkdir(parents=True)
    with pytest.raises(RoomError, match="missing Annotations/"):
        parse_room(tmp_path / "Area_1" / "office_1")
    room = write_room(tmp_path, "Area_1", "office_2", {})
    with pytest.raises(RoomError, match="no <class>_<i>.txt"):
        parse_room(room)
    room = write_room(
        tmp_path, "Area_1", "office_3", {"wall_1.txt": b"garbage\n", "floor_1.txt": b""}
    )
    with pytest.raises(RoomError, match="no valid points") as info:
        parse_room(room)
    assert {i.kind for i in info.value.issues} == {"not-numeric", "no-valid-points", "empty-file"}
    (tmp_path / "Area_1" / "office_4").mkdir()
    (tmp_path / "Area_1" / "office_4" / "office_4.txt").write_bytes(lines(3))
    with pytest.raises(RoomError, match="room-level office_4.txt has no labels"):
        parse_room(tmp_path / "Area_1" / "office_4")


def test_save_and_load_room_roundtrip(tmp_path):
    room = write_room(
        tmp_path, "Area_2", "hall_1", {"floor_1.txt": lines(7), "board_2.txt": lines(3, seed=4)}
    )
    data, _ = parse_room(room)
    save_room(tmp_path / "c" / "hall_1.npz", data)
    loaded = load_room(tmp_path / "c" / "hall_1.npz")
    for key in ("xyz", "rgb", "label", "instance"):
        np.testing.assert_array_equal(loaded[key], getattr(data, key))
        assert loaded[key].dtype == getattr(data, key).dtype
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["hall_1.npz"]  # no temp files


def test_load_room_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        load_room(bad)
    np.savez(tmp_path / "wrong.npz", xyz=np.zeros((4, 3), np.float64), rgb=np.zeros((4, 3), np.uint8),
             label=np.zeros(4, np.uint8), instance=np.zeros(4, np.int32))  # fmt: skip
    with pytest.raises(DataError, match=r"'xyz' is float64 \(4, 3\), expected float32"):
        load_room(tmp_path / "wrong.npz")
    np.savez(tmp_path / "short.npz", xyz=np.zeros((4, 3), np.float32))
    with pytest.raises(DataError, match="lacks"):
        load_room(tmp_path / "short.npz")


def test_issue_serialisation_roundtrip():
    issue = s3dis.Issue("control-byte", "repaired", "m", file="a.txt", line=3, raw="1\\x002")
    d = json.loads(json.dumps(issue.to_dict()))
    assert s3dis.Issue.from_dict(d) == issue
    assert "a.txt:3" in str(issue) and "repaired" in str(issue)


# ---------------------------------------------------------------------------------------------
# hybrid path (C reader for the clean lines, line by line for the few bad ones) == full slow path
# ---------------------------------------------------------------------------------------------

CORRUPTIONS = [
    b"22.350 6.692 3.061 185\x00187 188",  # repaired
    b"-10.5 4.25 103.0\x100000 120 110 100",  # repaired
    b"1\x002 3 4 5\x006 7",  # ambiguous
    b"1.0 nan 3.0 4 5 6",  # non-finite
    b"x y z r g b",  # text
    b"1.0 2.0 3.0 4 5 6 \x7f",  # DEL after six numbers
    b"1.0 2.0 3.0 1e1 5 6",  # exponent: fine, just not on the C fast path
    b"1.0 2.0 3.0 4 5",  # five columns (no suspect byte)
    b"1.0 2.0 3.0 300 5 6",  # colour out of range (no suspect byte)
    b"",  # blank line
]


@pytest.mark.parametrize("seed", range(6))
def test_hybrid_parse_equals_full_line_by_line(tmp_path, monkeypatch, seed):
    rng = np.random.default_rng(seed)
    good = lines(2000, seed=seed).split(b"\n")[:-1]
    # Seeds 0-2: only corruptions with unexpected bytes (hybrid path); 3-5: any corruption.
    pool = CORRUPTIONS[:7] if seed < 3 else CORRUPTIONS
    for pos in rng.choice(len(good), size=12, replace=False):
        good[pos] = pool[rng.integers(len(pool))]
    buf = b"\n".join(good) + (b"\n" if seed % 2 else b"")

    calls = []
    real_split = s3dis_parse._split_suspects
    monkeypatch.setattr(s3dis_parse, "_split_suspects", lambda b: calls.append(1) or real_split(b))
    fast = parse_bytes(tmp_path, buf)
    if seed < 3:
        assert real_split(buf) is not None  # the hybrid path really handled it
    monkeypatch.setattr(s3dis_parse, "_split_suspects", lambda b: None)
    slow = parse_bytes(tmp_path, buf)
    assert calls == [1]
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])
    assert [i.to_dict() for i in fast[2]] == [i.to_dict() for i in slow[2]]
    assert len(fast[2]) >= 1


def test_big_file_with_one_nul_byte(tmp_path):
    clean = lines(20_000, seed=7)
    at = clean.index(b" ", clean.index(b"\n", 200_000) + 30)  # a separator of a line mid-file
    line_no = clean[:at].count(b"\n") + 1
    xyz, rgb, issues = parse_bytes(tmp_path, clean[:at] + b"\x00" + clean[at + 1 :])
    ref = np.loadtxt(io.BytesIO(clean))
    np.testing.assert_array_equal(xyz, ref[:, :3].astype(np.float32))
    np.testing.assert_array_equal(rgb, ref[:, 3:].astype(np.uint8))
    (issue,) = issues
    assert (issue.kind, issue.line) == ("control-byte", line_no)
    assert issue.action.startswith("repaired")


@pytest.mark.parametrize("final_newline", [True, False])
def test_hybrid_with_bad_first_and_last_lines(tmp_path, final_newline):
    body = lines(50, seed=4)
    buf = b"1 2 3 4 5\x006\n" + body + b"7 8 9 10\x0011 12" + (b"\n" if final_newline else b"")
    assert s3dis_parse._split_suspects(buf) is not None
    xyz, rgb, issues = parse_bytes(tmp_path, buf)
    ref = np.loadtxt(io.BytesIO(b"1 2 3 4 5 6\n" + body + b"7 8 9 10 11 12\n"))
    np.testing.assert_array_equal(xyz, ref[:, :3].astype(np.float32))
    np.testing.assert_array_equal(rgb, ref[:, 3:].astype(np.uint8))
    assert [(i.kind, i.line) for i in issues] == [("control-byte", 1), ("control-byte", 52)]


@pytest.mark.parametrize("size", [1, 700, 5000])
def test_chunks_cover_the_buffer_at_line_boundaries(size):
    buf = lines(300, seed=1)[:-1]  # no final newline
    pieces = list(s3dis_parse._chunks(buf, size))
    assert b"".join(buf[s:e] for s, e, _ in pieces) == buf
    for s, _, before in pieces:
        assert s == 0 or buf[s - 1 : s] == b"\n"
        assert before == buf[:s].count(b"\n")


@pytest.mark.parametrize("seed", range(3))
def test_chunked_parse_equals_one_chunk(tmp_path, monkeypatch, seed):
    rng = np.random.default_rng(seed)
    good = lines(3000, seed=seed).split(b"\n")[:-1]
    for pos in rng.choice(len(good), size=25, replace=False):
        good[pos] = CORRUPTIONS[rng.integers(len(CORRUPTIONS))]
    buf = b"\n".join(good) + b"\n"
    whole = parse_bytes(tmp_path, buf)
    monkeypatch.setattr(s3dis_parse, "_CHUNK_BYTES", 2000)  # ~50 chunks, some clean, some not
    chunked = parse_bytes(tmp_path, buf)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])

    def key(i):
        return (i.line, i.kind, i.action)

    assert sorted(map(key, whole[2])) == sorted(map(key, chunked[2]))
    assert len(whole[2]) >= 10


def test_big_clean_file_goes_chunk_by_chunk_through_the_fast_path(tmp_path, monkeypatch):
    clean = lines(1000, seed=12)
    monkeypatch.setattr(s3dis_parse, "_CHUNK_BYTES", 4096)
    calls = []
    real_fast = s3dis_parse._fast_parse
    monkeypatch.setattr(s3dis_parse, "_fast_parse", lambda b: calls.append(len(b)) or real_fast(b))
    monkeypatch.setattr(s3dis_parse, "_slow_parse", None)  # would raise if used
    xyz, rgb, issues = parse_bytes(tmp_path, clean)
    assert issues == []
    ref = np.loadtxt(io.BytesIO(clean))
    np.testing.assert_array_equal(xyz, ref[:, :3].astype(np.float32))
    np.testing.assert_array_equal(rgb, ref[:, 3:].astype(np.uint8))
    assert len(calls) == len(list(s3dis_parse._chunks(clean, 4096))) > 5
    assert max(calls) < 4096 + 100 and sum(calls) == len(clean)
