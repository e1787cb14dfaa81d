"""The compiled S3DIS line parser (pointseg/_native/parse.c) == np.loadtxt, bit for bit.

Every accepted buffer must give exactly ``np.loadtxt(buf).astype(float32 / uint8)`` (compared
as uint32 bit patterns, so -0.0 and rounding ties count); every buffer outside the strict format
must be rejected with the index of its first bad line, and then the robust Python path gives the
documented repair / report.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from pointseg.data import s3dis
from pointseg.data.s3dis import parse as s3dis_parse


@pytest.fixture(scope="module")
def native():
    """The extension; a missing build is a failure wherever a C compiler exists."""
    try:
        from pointseg._native import _parse
    except ImportError as exc:
        if shutil.which("cc") is None:
            pytest.skip(f"no C compiler, native parser not built ({exc})")
        pytest.fail(
            "pointseg._native._parse is not built although a C compiler exists: run "
            "`pip install -e .` or `python setup.py build_ext --inplace` "
            f"({exc})"
        )
    return _parse


def run(native, buf: bytes, rows: int | None = None) -> tuple[int, np.ndarray, np.ndarray]:
    """parse_xyzrgb on buffers sized from the line count (or `rows`)."""
    n = native.count_lines(buf) if rows is None else rows
    xyz = np.full((n, 3), np.nan, np.float32)
    rgb = np.zeros((n, 3), np.uint8)
    return native.parse_xyzrgb(buf, xyz, rgb), xyz, rgb


def assert_equals_loadtxt(native, buf: bytes) -> None:
    got, xyz, rgb = run(native, buf)
    ref = np.loadtxt(io.BytesIO(buf), ndmin=2)
    assert got == ref.shape[0] == xyz.shape[0]
    want = ref[:, :3].astype(np.float32)
    diff = np.flatnonzero((xyz.view(np.uint32) != want.view(np.uint32)).any(axis=1))
    lines = buf.split(b"\n")
    assert diff.size == 0, [(lines[i], xyz[i].tolist(), want[i].tolist()) for i in diff[:5]]
    np.testing.assert_array_equal(rgb, ref[:, 3:].astype(np.uint8))


# ---------------------------------------------------------------------------------------------
# accepted input: bit-exact np.loadtxt
# ---------------------------------------------------------------------------------------------


def test_real_annotation_files_equal_loadtxt(native, shared_data):
    files = sorted((shared_data / "s3dis_raw").glob("Area_*/*/Annotations/*.txt"))
    assert len(files) == 27
    for f in files:
        assert_equals_loadtxt(native, f.read_bytes())


def coordinate_tokens(rng: np.random.Generator, n: int) -> list[str]:
    """Decimal tokens of every shape the strict format allows: 0..7 integer digits (leading
    zeros too), 0..8 fraction digits, '1.' and '.5' forms, negatives and negative zeros."""
    int_digits = rng.integers(0, 8, n)
    frac_digits = rng.integers(0, 9, n)
    ints = rng.integers(0, 10**7, n) % (10 ** np.maximum(int_digits, 1))
    fracs = rng.integers(0, 10**8, n) % (10**frac_digits)
    zero_pad = rng.random(n) < 0.1
    dot_form = rng.integers(0, 8, n)  # 0: "12." (no fraction), 1: ".5"-like (no integer)
    neg = rng.random(n) < 0.4
    out = []
    for i in range(n):
        k, f = int(frac_digits[i]), int(fracs[i])
        head = "-" if neg[i] else ""
        ip = f"{int(ints[i]):0{int(int_digits[i])}d}" if zero_pad[i] else str(int(ints[i]))
        fp = f"{f:0{k}d}" if k else ""
        if dot_form[i] == 0:
            out.append(f"{head}{ip}.")
        elif dot_form[i] == 1 and k:
            out.append(f"{head}.{fp}")
        elif k:
            out.append(f"{head}{ip}.{fp}")
        else:
            out.append(f"{head}{ip}")
    return out


def boundary_tokens(rng: np.random.Generator, n: int) -> list[str]:
    """Decimals at and around float32 rounding boundaries, where a float32 read or a double
    rounding error would show: exact midpoints between neighbouring float32 values (long
    tokens, the slow path), the midpoint +- one unit in the last of 9-17 significant digits, and
    tokens past the fast path's limits (>19 digits, >2^53, >22 fraction digits)."""
    a = rng.uniform(-2000, 2000, n).astype(np.float32)
    b = np.nextafter(a, np.float32(np.inf))
    mid = (a.astype(np.float64) + b.astype(np.float64)) / 2  # exact in float64
    out = []
    for i in range(n):
        m = float(mid[i])
        kind = i % 6
        if kind == 0:
            out.append(format(Decimal(m), "f"))  # exactly the midpoint: ties to even
        elif kind == 1:
            out.append(format(m, ".17g"))
        elif kind in (2, 3):
            digits = int(rng.integers(9, 16))
            d = Decimal(format(m, f".{digits}g")).normalize()
            ulp = Decimal(1).scaleb(d.adjusted() - digits + 1)
            out.append(format(d + ulp if kind == 2 else d - ulp, "f"))
        elif kind == 4:
            out.append(f"{m:.25f}")  # > 22 fraction digits
        else:
            out.append(f"{int(rng.integers(1, 10**6))}{'0' * 14}.{int(rng.integers(10**7))}")
    return out


def random_lines_equal_loadtxt(native, seed: int, n: int, n_boundary: int) -> None:
    rng = np.random.default_rng(seed)
    coords = coordinate_tokens(rng, 3 * n - n_boundary) + boundary_tokens(rng, n_boundary)
    coords = [coords[i] for i in rng.permutation(len(coords))]
    colours = rng.integers(0, 256, (n, 3))
    pad = rng.random((n, 3)) < 0.05  # colours with leading zeros: "007"
    text = "\n".join(
        " ".join(
            coords[3 * i : 3 * i + 3]
            + [f"{c:03d}" if p else str(c) for c, p in zip(colours[i], pad[i], strict=True)]
        )
        for i in range(n)
    )
    buf = (text + ("\n" if seed == 0 else "")).encode()  # seed 1: no final newline
    assert sum(c.startswith("-") and float(c) == 0 for c in coords) > 100  # negative zeros
    assert_equals_loadtxt(native, buf)


@pytest.mark.parametrize("seed", range(2))
def test_random_lines_equal_loadtxt(native, seed):
    random_lines_equal_loadtxt(native, seed, n=150_000, n_boundary=3000)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 6))
def test_many_random_lines_equal_loadtxt(native, seed):
    # 4 x 1M lines, a third of their coordinates at float32 rounding boundaries.
    random_lines_equal_loadtxt(native, seed, n=1_000_000, n_boundary=1_000_000)


@pytest.mark.parametrize(
    "line, xyz",
    [
        (b"-0.000 0 -0 1 2 3", [-0.0, 0.0, -0.0]),
        (b"-.5 1. 007.250 0 0 0", [-0.5, 1.0, 7.25]),
        (b"0.1 0.2 0.3 255 255 255", [0.1, 0.2, 0.3]),
        (b"16777217 9007199254740993 0.00000000000000000000001 1 1 1", None),
        (b"1" * 38 + b".5 340282346638528859811704183484516925440.5 1 2 3 4", None),  # FLT_MAX
    ],
)
def test_edge_values_equal_loadtxt(native, line, xyz):
    assert_equals_loadtxt(native, line)
    if xyz is not None:
        got = run(native, line)[1][0]
        want = np.array(xyz, np.float32)
        assert (got.view(np.uint32) == want.view(np.uint32)).all()  # signs of zeros too


def test_count_lines(native):
    for buf in [b"", b"\n", b"1", b"1\n", b"1\n2", b"1\n\n", b"a\nb\nc\n" * 1000 + b"tail"]:
        assert native.count_lines(buf) == buf.count(b"\n") + (
            1 if buf and not buf.endswith(b"\n") else 0
        )
    assert native.count_lines(memoryview(b"1\n2\n")) == 2


def test_parallel_threads_give_the_same_result(native, shared_data):
    # The parse runs without the GIL: two threads on the same buffer must not interfere.
    f = max(
        (shared_data / "s3dis_raw").glob("Area_*/*/Annotations/*.txt"),
        key=lambda p: p.stat().st_size,
    )
    buf = f.read_bytes()
    results = [None, None]

    def work(k):
        results[k] = run(native, buf)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (n0, x0, c0), (n1, x1, c1) = results
    assert n0 == n1 == buf.count(b"\n")
    np.testing.assert_array_equal(x0, x1)
    np.testing.assert_array_equal(c0, c1)
    assert_equals_loadtxt(native, buf)


# ---------------------------------------------------------------------------------------------
# rejected input: failure code, then the robust path
# ---------------------------------------------------------------------------------------------

# Tests of the tier wiring (which parser `parse_annotation_file` uses) need the native tier on.
NATIVE_TIER = pytest.mark.skipif(
    os.environ.get("POINTSEG_NO_NATIVE", "") not in ("", "0"),
    reason="POINTSEG_NO_NATIVE=1: the pandas tier is active by request",
)

GOOD = b"1.000 -2.500 3.250 10 20 30"

# (bad line, issue kind reported by parse_annotation_file or None if the robust path reads it
# silently, e.g. a tab separator)
REJECTED = [
    (b"22.350 6.692 3.061 185\x00187 188", "control-byte"),  # NUL in place of a separator
    (b"103.0\x100000 1.0 2.0 3 4 5", "control-byte"),  # control byte inside a number
    (b"1.0 2.0 3.0 4 5", "bad-columns"),
    (b"1.0 2.0 3.0 4 5 6 7", "bad-columns"),
    (b"1.0 2.0 3.0 256 5 6", "colour-range"),
    (b"1.0 2.0 3.0 4 5 1000000000000", "colour-range"),
    (b"1.0 2.0 3.0 -1 5 6", "colour-range"),
    (b"1.0 2.0 3.0 4.5 5 6", "colour-fraction"),
    (b"x y z r g b", "not-numeric"),
    (b"1.0 2.0 3.0 4 5 6 \x7f", "control-byte"),
    (b"nan 2.0 3.0 4 5 6", "non-finite"),
    (b"1" * 40 + b" 2.0 3.0 4 5 6", "non-finite"),  # too large for float32
    (b"", "blank-line"),
    (b"   ", "blank-line"),
    (b"- 2.0 3.0 4 5 6", "not-numeric"),
    (b". 2.0 3.0 4 5 6", "not-numeric"),
    (b"1.2.3 2.0 3.0 4 5 6", "not-numeric"),
    (b"--1 2.0 3.0 4 5 6", "not-numeric"),
    (b"1.0 2.0 3.0 4 5 \xc3\xa9", "not-numeric"),
    (b"1.0  2.0 3.0 4 5 6", None),  # double space
    (b"1.0 2.0 3.0 4 5 6 ", None),  # trailing space
    (b" 1.0 2.0 3.0 4 5 6", None),  # leading space
    (b"1.0\t2.0 3.0 4 5 6", None),
    (b"1.0 2.0 3.0 4 5 6\r", None),  # CR (parse_annotation_file turns CRLF files into LF)
    (b"1e3 2.0 3.0 4 5 6", None),
    (b"+1.0 2.0 3.0 4 5 6", None),
    (b"1.0 2.0 3.0 4.0 5 6", None),
    (b"0." + b"1" * 200 + b" 2.0 3.0 4 5 6", None),  # token too long for the C slow path
]


@NATIVE_TIER
@pytest.mark.parametrize("bad, kind", REJECTED, ids=[repr(b[:24]) for b, _ in REJECTED])
@pytest.mark.parametrize("where", [0, 5, 9])
def test_rejected_lines_report_their_index(native, tmp_path, bad, kind, where):
    lines = [GOOD] * 10
    lines[where] = bad
    buf = b"\n".join(lines) + b"\n"
    got, _, _ = run(native, buf)
    assert got == -1 - where
    assert s3dis_parse._fast_parse(buf) is None

    # The robust path then reports (or silently reads) exactly that line.
    f = tmp_path / "wall_1.txt"
    f.write_bytes(buf)
    xyz, rgb, issues = s3dis.parse_annotation_file(f)
    if kind is None:
        assert issues == []
        ref = np.loadtxt(io.BytesIO(buf.replace(b"\r", b"")))
        np.testing.assert_array_equal(xyz, ref[:, :3].astype(np.float32))
        np.testing.assert_array_equal(rgb, ref[:, 3:].astype(np.uint8))
    else:
        assert [(i.kind, i.line) for i in issues] == [(kind, where + 1)]
        good = np.loadtxt(io.BytesIO(GOOD + b"\n"))
        np.testing.assert_array_equal(xyz[0 if where else 1], good[:3].astype(np.float32))


@pytest.mark.parametrize(
    "buf, index",
    [
        (GOOD + b"\r\n" + GOOD, 0),  # CRLF
        (GOOD + b"\n\n" + GOOD, 1),  # blank line in the middle
        (GOOD + b"\n" + GOOD + b"\n\n", 2),  # blank line at the end
        (b"\n" + GOOD, 0),
    ],
)
def test_line_structure_failures(native, buf, index):
    assert run(native, buf)[0] == -1 - index
    assert s3dis_parse._fast_parse(buf) is None


def test_more_lines_than_rows_fails_and_fewer_lines_are_counted(native):
    buf = b"\n".join([GOOD] * 4)
    assert run(native, buf, rows=3)[0] == -1 - 3  # the first line that does not fit
    got, xyz, _ = run(native, buf, rows=6)
    assert got == 4 and np.isnan(xyz[4:]).all()  # rows past the data untouched
    assert run(native, b"", rows=0)[0] == 0


def test_bad_output_buffers_raise(native):
    buf = GOOD + b"\n"
    ok_xyz, ok_rgb = np.empty((1, 3), np.float32), np.empty((1, 3), np.uint8)
    with pytest.raises(ValueError, match="xyz"):
        native.parse_xyzrgb(buf, np.empty((1, 3), np.float64), ok_rgb)
    with pytest.raises(ValueError, match="rgb"):
        native.parse_xyzrgb(buf, ok_xyz, np.empty((2, 3), np.uint8))
    with pytest.raises(ValueError, match="rgb"):
        native.parse_xyzrgb(buf, ok_xyz, np.empty((1, 3), np.int8))
    with pytest.raises(ValueError, match="contiguous"):
        native.parse_xyzrgb(buf, np.empty((3, 6), np.float32)[:1, ::2], ok_rgb)  # strided
    read_only = np.empty((1, 3), np.float32)
    read_only.setflags(write=False)
    with pytest.raises((BufferError, ValueError)):
        native.parse_xyzrgb(buf, read_only, ok_rgb)
    with pytest.raises(TypeError):
        native.parse_xyzrgb("1 2 3 4 5 6", ok_xyz, ok_rgb)  # str, not bytes
    assert native.parse_xyzrgb(bytearray(buf), ok_xyz, ok_rgb) == 1


# ---------------------------------------------------------------------------------------------
# wiring in pointseg.data.s3dis
# ---------------------------------------------------------------------------------------------


@NATIVE_TIER
def test_native_tier_is_used_and_equals_the_pandas_tier(native, shared_data, monkeypatch):
    assert s3dis.PARSER_TIER == "native"
    files = sorted((shared_data / "s3dis_raw").glob("Area_*/*/Annotations/*.txt"))[::4]
    pandas_results = [s3dis_parse._pandas_fast_parse(f.read_bytes()) for f in files]

    def no_pandas(buf):
        raise AssertionError("pandas tier used although the native parser is built")

    monkeypatch.setattr(s3dis_parse, "_pandas_fast_parse", no_pandas)
    for f, (p_xyz, p_rgb) in zip(files, pandas_results, strict=True):
        xyz, rgb, issues = s3dis.parse_annotation_file(f)
        assert issues == []
        np.testing.assert_array_equal(xyz.view(np.uint32), p_xyz.view(np.uint32))
        np.testing.assert_array_equal(rgb, p_rgb)


def test_without_the_extension_the_pandas_tier_parses(tmp_path, monkeypatch):
    buf = b"\n".join([GOOD, b"-0.5 1. 2 0 0 255", b"1.0 2.0 3.0 4 5\x006"]) + b"\n"
    f = tmp_path / "wall_1.txt"
    f.write_bytes(buf)
    with_native = s3dis.parse_annotation_file(f)
    monkeypatch.setattr(s3dis_parse, "_native_parse_mod", None)
    calls = []
    real = s3dis_parse._pandas_fast_parse
    monkeypatch.setattr(s3dis_parse, "_pandas_fast_parse", lambda b: calls.append(1) or real(b))
    without = s3dis.parse_annotation_file(f)
    assert calls  # the pandas reader really ran (on the clean rest of the hybrid split)
    np.testing.assert_array_equal(with_native[0], without[0])
    np.testing.assert_array_equal(with_native[1], without[1])
    assert [i.to_dict() for i in with_native[2]] == [i.to_dict() for i in without[2]]
    assert [i.kind for i in without[2]] == ["control-byte"]


def test_empty_buffers_are_not_taken_by_the_fast_path(native):
    assert s3dis_parse._fast_parse(b"") is None
    assert s3dis_parse._fast_parse(b"\n") is None


def test_extension_source_is_next_to_the_package():
    # setup.py builds pointseg._native._parse from this file.
    assert (Path(s3dis.__file__).parents[2] / "_native" / "parse.c").is_file()


# ---------------------------------------------------------------------------------------------
# parse_prefix: parse up to a bad line, continue after it (the hybrid path)
# ---------------------------------------------------------------------------------------------


def prefix_loop(native, buf: bytes) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Every strict line through parse_prefix, the bad ones skipped: rows and bad line indices."""
    n_lines = native.count_lines(buf)
    xyz, rgb = np.empty((n_lines, 3), np.float32), np.empty((n_lines, 3), np.uint8)
    row, pos, bad = 0, 0, []
    while pos < len(buf):
        n, stop = native.parse_prefix(buf, pos, xyz[row:], rgb[row:])
        row += n
        if stop == len(buf):
            break
        assert stop == 0 or buf[stop - 1 : stop] == b"\n"  # a line start
        bad.append(row + len(bad))
        end = buf.find(b"\n", stop)
        pos = len(buf) if end < 0 else end + 1
    return xyz[:row], rgb[:row], bad


@pytest.mark.parametrize("final_newline", [True, False])
def test_parse_prefix_skips_exactly_the_bad_lines(native, final_newline):
    rng = np.random.default_rng(5)
    good = [" ".join(coordinate_tokens(rng, 3) + ["1", "2", "3"]).encode() for _ in range(300)]
    lines = list(good)
    where = sorted(rng.choice(300, size=40, replace=False).tolist())
    for k, i in enumerate(where):
        lines[i] = REJECTED[k % len(REJECTED)][0]
    lines[-1] = REJECTED[0][0]  # the last line bad too (with and without its newline)
    where = sorted(set(where) | {299})
    buf = b"\n".join(lines) + (b"\n" if final_newline else b"")
    xyz, rgb, bad = prefix_loop(native, buf)
    assert bad == where
    kept = b"\n".join(g for i, g in enumerate(good) if i not in set(where))
    ref = np.loadtxt(io.BytesIO(kept), ndmin=2)
    np.testing.assert_array_equal(
        xyz.view(np.uint32), ref[:, :3].astype(np.float32).view(np.uint32)
    )
    np.testing.assert_array_equal(rgb, ref[:, 3:].astype(np.uint8))


def test_parse_prefix_overflow_line_stops_there_and_the_rest_is_reparsed(native):
    # A slow-path token too large for float32 is only found after the scan: the rows from that
    # line on are dropped and the next call starts after it.
    lines = [
        b"0.5 1.5 2.5 1 2 3",
        b"1" * 20 + b".25 0 0 4 5 6",
        b"0 " + b"1" * 40 + b" 0 7 8 9",
    ]  # 2nd column
    lines += [b"3." + b"3" * 25 + b" 0 0 10 11 12", b"-4.5 0 0 13 14 15"]
    buf = b"\n".join(lines)
    xyz, rgb, bad = prefix_loop(native, buf)
    assert bad == [2]
    ref = np.loadtxt(io.BytesIO(b"\n".join(lines[:2] + lines[3:])))
    np.testing.assert_array_equal(
        xyz.view(np.uint32), ref[:, :3].astype(np.float32).view(np.uint32)
    )
    np.testing.assert_array_equal(rgb[:, 0], [1, 4, 10, 13])
    n, stop = native.parse_prefix(buf, 0, np.empty((5, 3), np.float32), np.empty((5, 3), np.uint8))
    assert (n, stop) == (2, buf.index(b"0 " + b"1" * 40))  # the line start, not the token


def test_parse_prefix_arguments(native):
    buf = GOOD + b"\n" + GOOD
    xyz, rgb = np.empty((2, 3), np.float32), np.empty((2, 3), np.uint8)
    assert native.parse_prefix(buf, 0, xyz, rgb) == (2, len(buf))
    assert native.parse_prefix(buf, len(GOOD) + 1, xyz, rgb) == (1, len(buf))
    assert native.parse_prefix(buf, len(buf), xyz, rgb) == (0, len(buf))
    assert native.parse_prefix(buf, 0, xyz[:1], rgb[:1]) == (1, len(GOOD) + 1)  # rows full
    for start in (-1, len(buf) + 1):
        with pytest.raises(ValueError, match="start"):
            native.parse_prefix(buf, start, xyz, rgb)


def corrupt_file(seed: int, n: int = 3000, bad: int = 60) -> bytes:
    rng = np.random.default_rng(seed)
    lines = [
        " ".join(coordinate_tokens(rng, 3) + [str(c) for c in rng.integers(0, 256, 3)]).encode()
        for _ in range(n)
    ]
    for i in rng.choice(n, size=bad, replace=False):
        lines[i] = REJECTED[rng.integers(len(REJECTED))][0]
    return b"\n".join(lines) + (b"\n" if seed % 2 else b"")


@NATIVE_TIER
@pytest.mark.parametrize("seed", range(4))
def test_native_hybrid_equals_the_pandas_tier_and_line_by_line(native, tmp_path, monkeypatch, seed):
    # Every kind of bad line (not only bad bytes) stays a single line outside C; values and
    # reports equal the pandas tier's and the full line-by-line parse's.
    f = tmp_path / "wall_1.txt"
    f.write_bytes(corrupt_file(seed))
    real_slow = s3dis_parse._slow_parse
    monkeypatch.setattr(s3dis_parse, "_slow_parse", None)  # would raise if the whole file went slow
    hybrid = s3dis.parse_annotation_file(f)
    monkeypatch.setattr(s3dis_parse, "_slow_parse", real_slow)
    monkeypatch.setattr(s3dis_parse, "_native_parse_mod", None)
    pandas_tier = s3dis.parse_annotation_file(f)
    monkeypatch.setattr(s3dis_parse, "_split_suspects", lambda b: None)
    slow = s3dis.parse_annotation_file(f)
    for other in (pandas_tier, slow):
        np.testing.assert_array_equal(hybrid[0].view(np.uint32), other[0].view(np.uint32))
        np.testing.assert_array_equal(hybrid[1], other[1])
        assert [i.to_dict() for i in hybrid[2]] == [i.to_dict() for i in other[2]]
    assert len(hybrid[2]) >= 30


@NATIVE_TIER
def test_native_hybrid_gives_up_beyond_the_suspect_limit(native, tmp_path, monkeypatch):
    f = tmp_path / "wall_1.txt"
    f.write_bytes(corrupt_file(7, n=400, bad=30))
    monkeypatch.setattr(s3dis_parse, "_MAX_SUSPECT_LINES", 10)
    calls = []
    real_slow = s3dis_parse._slow_parse
    monkeypatch.setattr(
        s3dis_parse, "_slow_parse", lambda b, log: calls.append(1) or real_slow(b, log)
    )
    limited = s3dis.parse_annotation_file(f)
    assert calls == [1]  # the whole file went line by line
    monkeypatch.setattr(s3dis_parse, "_MAX_SUSPECT_LINES", 10_000)
    hybrid = s3dis.parse_annotation_file(f)
    assert calls == [1]
    np.testing.assert_array_equal(limited[0], hybrid[0])
    assert [i.to_dict() for i in limited[2]] == [i.to_dict() for i in hybrid[2]]


@pytest.mark.parametrize("value, tier", [("1", "pandas"), ("0", "native"), ("", "native")])
def test_pointseg_no_native_selects_the_pandas_tier(native, value, tier):
    # Same switch as the kNN kernel and `pointseg info`, read when the module is imported.
    code = "from pointseg.data import s3dis; print(s3dis.PARSER_TIER)"
    env = {**os.environ, "POINTSEG_NO_NATIVE": value}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == tier
