"""One raw S3DIS annotation file (``x y z r g b`` lines) → xyz float32, rgb uint8, with issues.

Parsing strategy (speed, measured in ``benchmarks/prepare.py`` on the 4 real sample rooms, 17.6
MB, on a shared 2-core machine): the whole file is read as bytes and goes, in one call, through
the first tier that is available:

1. the native parser ``pointseg._native._parse`` (C, built by setup.py when a compiler exists;
   :data:`PARSER_TIER` says which tier is active): strict ``x y z r g b`` lines (``-?D*(.D*)?``
   coordinates, integer colours 0..255, single spaces, newline line ends), correctly rounded
   decimal -> float64 -> float32 (Clinger's exact fast path; CPython's strtod for longer tokens),
   so the result is bit-identical to ``np.loadtxt(...).astype(float32)``; GIL released.
   ~600 MB/s parse-only, ~27x ``np.loadtxt`` (~1 GB/s into preallocated arrays); the whole
   ``prepare_s3dis`` (read, parse, npz write + fsync, sha256, index) 190-215 MB/s in one
   process, 8.4-8.8x the PointNet recipe (parse ~45% of it, npz write + fsync + sha256 ~50%).
2. without it, ``bytes.translate`` (GB/s) proves the file holds only ``0-9 . - space newline``
   and pandas' C reader parses it with strict dtypes (float32 xyz, uint8 colours); the row
   count must equal the line count. 84-115 MB/s parse-only, 4-5x ``np.loadtxt`` (whole prepare
   ~3.2x); ``np.fromstring`` was no faster than ``np.loadtxt`` and a vectorised numpy digit
   parser was slower than pandas.

Either tier refuses anything outside its strict format instead of guessing. A file with a few
bad lines (the real corrupt files: one stray byte in ~1 M lines) sends only those lines through
the line-by-line parser: with the native tier any kind of bad line (``parse_prefix`` parses up to
it and continues after it; ~300 MB/s on a 1.6 MB file with one NUL byte), with pandas only lines
holding unexpected bytes (anything else, e.g. wrong column counts, blank lines, colours outside
0..255, sends the whole file line by line). Files over 8 MB go in 8 MB chunks (bounded memory;
only the chunks with problems leave the fast tier). The line-by-line parser repairs what is
unambiguous, skips the rest, and reports every line. Rooms run in parallel processes (``workers``).
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pointseg import _native as _native_switch
from pointseg.data.s3dis.issues import Issue, IssueLog, escape_bytes

_FAST_BYTES = b"0123456789.- \n"  # the only bytes of a clean file
_WHITESPACE = b" \t\r\n\x0b\x0c"
# Control bytes (other than whitespace) and DEL: the stray bytes of the known corrupt lines.
_CONTROL = bytes(b for b in itertools.chain(range(32), [127]) if b not in _WHITESPACE)
_CONTROL_RE = re.compile(b"[" + re.escape(_CONTROL) + b"]")
# A plain decimal number; nan/inf are accepted here so they are reported as non-finite values.
_NUMBER_RE = re.compile(rb"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|(?i:nan|inf|infinity))")
_NON_WHITESPACE = re.compile(rb"\S")  # the complement of what bytes.strip() strips
_MAX_CONTROL_COMBINATIONS = 4  # 2**4 repair candidates at most per line


def _load_native_parser() -> Any:
    """The optional C extension (setup.py builds it when a compiler exists), or None: not built,
    or turned off with ``POINTSEG_NO_NATIVE=1`` (read at import; A/B runs, ``pointseg info``)."""
    if _native_switch.disabled():
        return None
    try:
        from pointseg._native import _parse
    except ImportError:  # no compiler at install time: pandas' C reader instead
        return None
    return _parse


_native_parse_mod = _load_native_parser()

# Which whole-file parser `_fast_parse` uses: "native" (pointseg/_native/parse.c) or "pandas".
PARSER_TIER = "native" if _native_parse_mod is not None else "pandas"


def _fast_parse(buf: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Parse a file in the strict clean format in one call; None if it is not provably clean.

    Returns xyz float32 (n, 3) and rgb uint8 (n, 3), equal to ``np.loadtxt`` + ``astype``.
    Uses the native parser if it is built (:data:`PARSER_TIER`), else pandas' C reader. None
    sends the buffer to the robust paths, which report and repair.
    """
    if _native_parse_mod is not None:
        return _native_fast_parse(buf)
    return _pandas_fast_parse(buf)


def _native_fast_parse(buf: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """The compiled strict parser (GIL released): ``-?D*(.D*)?`` coordinates, integer colours
    0..255, single spaces, newline line ends; anything else (including an empty buffer) -> None."""
    n_lines = _native_parse_mod.count_lines(buf)
    if n_lines == 0:
        return None  # empty: reported as an empty file
    xyz = np.empty((n_lines, 3), np.float32)
    rgb = np.empty((n_lines, 3), np.uint8)
    if _native_parse_mod.parse_xyzrgb(buf, xyz, rgb) != n_lines:
        return None  # negative: first bad line; smaller: blank trailing line(s)
    return xyz, rgb


def _pandas_fast_parse(buf: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Parse a clean file with pandas' C reader; None if the file is not provably clean.

    Returns xyz float32 (n, 3) and rgb uint8 (n, 3). The reader is strict with explicit dtypes:
    a colour outside 0..255 or fractional, a field that is not a number, a line with more fields
    all raise and send the file to the line-by-line path.
    """
    if buf.translate(None, _FAST_BYTES):
        return None  # some byte outside digits, '.', '-', ' ', '\n'
    n_lines = buf.count(b"\n") + (0 if buf.endswith(b"\n") else 1)
    import pandas as pd

    try:
        df = pd.read_csv(
            io.BytesIO(buf),
            sep=" ",
            header=None,
            engine="c",
            na_filter=False,
            low_memory=False,
            # float32 straight from the reader equals float64-then-cast (checked in tests).
            dtype={
                0: np.float32,
                1: np.float32,
                2: np.float32,
                3: np.uint8,
                4: np.uint8,
                5: np.uint8,
            },
        )
    except (ValueError, OverflowError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    # Blank lines are skipped silently by the reader and a trailing space adds a column: both
    # show up here and are then reported line by line.
    if df.shape != (n_lines, 6):
        return None
    xyz = df.iloc[:, :3].to_numpy()  # (n, 3) float32, one block copy
    rgb = df.iloc[:, 3:].to_numpy()  # (n, 3) uint8
    if xyz.dtype != np.float32 or rgb.dtype != np.uint8 or not np.isfinite(xyz).all():
        return None  # too many digits overflow float32 to inf: reported line by line
    return xyz, rgb


def _parse_fields(fields: list[bytes]) -> list[float] | None:
    """Six numbers from six tokens, or None if any token is not a plain number."""
    if len(fields) != 6:
        return None
    try:
        if not all(_NUMBER_RE.fullmatch(f) for f in fields):
            return None
        return [float(f) for f in fields]
    except ValueError:
        return None


def _repair_candidates(line: bytes) -> list[tuple[bytes, str]]:
    """Every way of reading the control bytes of a line as a separator or as nothing."""
    spans = [m.start() for m in _CONTROL_RE.finditer(line)]
    if len(spans) > _MAX_CONTROL_COMBINATIONS:
        options = [(b" ",) * len(spans), (b"",) * len(spans)]
    else:
        options = list(itertools.product((b" ", b""), repeat=len(spans)))
    out = []
    for choice in options:
        parts, prev = [], 0
        for pos, rep in zip(spans, choice, strict=True):
            parts += [line[prev:pos], rep]
            prev = pos + 1
        parts.append(line[prev:])
        what = ", ".join(
            f"{escape_bytes(line[p : p + 1])} at byte {p} {'-> space' if r else 'deleted'}"
            for p, r in zip(spans, choice, strict=True)
        )
        out.append((b"".join(parts), what))
    return out


def _parse_line(number: int, raw: bytes, log: IssueLog) -> list[float] | None:
    """Six values of one raw line (repairing an unambiguous stray control byte), or None
    (skipped; the reason is logged with the line number and raw bytes)."""
    line = raw[:-1] if raw.endswith(b"\r") else raw  # Windows line ending: harmless
    fields = line.split()
    if not fields:
        log.add("blank-line", "skipped line", "blank line", number, raw)
        return None
    values = _parse_fields(fields)
    if values is not None:
        return values
    if _CONTROL_RE.search(line):
        # A stray control byte either replaced a separator (`185\x00187`, five columns) or
        # sits inside a number (`103.0\x100000`, seven columns): keep the unique reading
        # that gives six numbers; several different readings are ambiguous.
        good: dict[tuple[float, ...], str] = {}
        for candidate, what in _repair_candidates(line):
            parsed = _parse_fields(candidate.split())
            if parsed is not None:
                good.setdefault(tuple(parsed), what)
        if len(good) == 1:
            ((parsed, what),) = good.items()
            log.add("control-byte", f"repaired ({what})", "stray control byte", number, raw)
            return list(parsed)
        if good:
            message = (
                f"stray control byte with {len(good)} different six-number readings (ambiguous)"
            )
        else:
            message = "stray control byte, no reading gives six numbers"
        log.add("control-byte", "skipped line", message, number, raw)
        return None
    if all(_NUMBER_RE.fullmatch(f) for f in fields):
        log.add(
            "bad-columns",
            "skipped line",
            f"{len(fields)} numbers, expected 6 (x y z r g b)",
            number,
            raw,
        )
    else:
        log.add("not-numeric", "skipped line", "not six numbers (x y z r g b)", number, raw)
    return None


def _slow_parse(buf: bytes, log: IssueLog) -> tuple[np.ndarray, np.ndarray]:
    """Line-by-line parse of a whole file; reports every bad line.

    Returns values float64 (n, 6) and the 1-based line numbers int64 (n,) of the kept points.
    """
    rows: list[list[float]] = []
    line_numbers: list[int] = []
    lines = buf.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline does not start a line
    for number, raw in enumerate(lines, start=1):
        values = _parse_line(number, raw, log)
        if values is not None:
            rows.append(values)
            line_numbers.append(number)
    return np.array(rows, dtype=np.float64).reshape(-1, 6), np.array(line_numbers, dtype=np.int64)


_CLEAN_BYTE = np.zeros(256, dtype=bool)
_CLEAN_BYTE[np.frombuffer(_FAST_BYTES, np.uint8)] = True
_MAX_SUSPECT_LINES = 10_000  # beyond this the whole file goes line by line anyway


_Split = tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int, int]]]


def _split_suspects(buf: bytes) -> _Split | None:
    """Fast path for a big file with a few bad lines (the real corrupt S3DIS files: one stray
    byte in ~1 M lines): the clean lines through the fast tier, only the suspect lines left for
    the line-by-line parser. None if that does not pay (then the whole file goes line by line).

    Returns the clean lines' xyz float32 (m, 3), rgb uint8 (m, 3) and 1-based line numbers
    int64 (m,), and the suspect lines as (line number, start, end) byte spans. With the native
    parser every line outside its strict format is a suspect (bad bytes, wrong columns, blank
    lines, colours > 255, ...); with pandas only lines holding unexpected bytes are.
    """
    if _native_parse_mod is not None:
        return _split_native(buf)
    return _split_unexpected_bytes(buf)


def _split_native(buf: bytes) -> _Split | None:
    """:func:`_split_suspects` with the native parser: parse up to the first bad line, note its
    span, continue after it; one pass over the buffer however many bad lines there are."""
    n_lines = _native_parse_mod.count_lines(buf)
    xyz = np.empty((n_lines, 3), np.float32)
    rgb = np.empty((n_lines, 3), np.uint8)
    spans: list[tuple[int, int, int]] = []  # (line number, start, end)
    row = pos = 0
    while pos < len(buf):
        n, stop = _native_parse_mod.parse_prefix(buf, pos, xyz[row:], rgb[row:])
        row += n
        if stop >= len(buf):
            break
        end = buf.find(b"\n", stop)
        end = len(buf) if end < 0 else end
        spans.append((row + len(spans) + 1, stop, end))  # every earlier line is a row or a span
        if len(spans) > _MAX_SUSPECT_LINES:
            return None
        pos = end + 1
    keep = np.ones(n_lines + 1, dtype=bool)
    keep[0] = False
    keep[[s[0] for s in spans]] = False
    clean_numbers = np.flatnonzero(keep)  # (row,) 1-based
    if clean_numbers.size != row:
        raise AssertionError(f"native split: {row} rows but {clean_numbers.size} clean lines")
    return xyz[:row], rgb[:row], clean_numbers, spans


def _split_unexpected_bytes(buf: bytes) -> _Split | None:
    """:func:`_split_suspects` with pandas: cut out the lines holding unexpected bytes and parse
    the rest with its C reader; None if the rest is not clean either."""
    a = np.frombuffer(buf, np.uint8)
    bad = np.flatnonzero(~_CLEAN_BYTE[a])  # positions of unexpected bytes, (b,)
    if bad.size == 0:
        return None
    spans: list[tuple[int, int, int]] = []  # (line number, start, end)
    newlines_before, counted_to = 0, 0
    for pos in bad.tolist():
        if spans and pos < spans[-1][2]:
            continue  # same line as the previous bad byte
        start = buf.rfind(b"\n", 0, pos) + 1
        end = buf.find(b"\n", pos)
        end = len(buf) if end < 0 else end
        newlines_before += buf.count(b"\n", counted_to, start)
        counted_to = start
        spans.append((newlines_before + 1, start, end))
        if len(spans) > _MAX_SUSPECT_LINES:
            return None
    pieces, prev = [], 0
    for _, start, end in spans:
        pieces.append(buf[prev:start])
        prev = end + 1  # drop the suspect line and its newline
    pieces.append(buf[prev:])
    rest = b"".join(pieces)
    n_lines = buf.count(b"\n") + (0 if buf.endswith(b"\n") else 1)
    keep = np.ones(n_lines + 1, dtype=bool)
    keep[0] = False
    keep[[s[0] for s in spans]] = False
    clean_numbers = np.flatnonzero(keep)  # (m,) 1-based
    if not rest.strip():
        if clean_numbers.size:
            return None  # blank lines only: reported line by line
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), clean_numbers, spans
    fast = _fast_parse(rest)
    if fast is None or fast[0].shape[0] != clean_numbers.size:
        return None
    return fast[0], fast[1], clean_numbers, spans


def _numbers(values: np.ndarray) -> str:
    return " ".join(str(int(v)) if v == int(v) else repr(float(v)) for v in values)


class _Lines:
    """Raw line `n` (1-based) of a buffer, split only when a report needs one."""

    def __init__(self, buf: bytes):
        self.buf = buf
        self._lines: list[bytes] | None = None

    def __getitem__(self, i: int) -> bytes:
        if self._lines is None:
            self._lines = self.buf.split(b"\n")
        return self._lines[i]


def _check_rows(
    values: np.ndarray, line_numbers: np.ndarray, lines: _Lines, log: IssueLog
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Value checks of line-by-line parsed rows: skip non-finite rows, clip / round colours.

    values float64 (n, 6), line_numbers (n,) -> xyz float32 (m, 3), rgb uint8 (m, 3), numbers (m,).
    """
    finite = np.isfinite(values).all(axis=1)
    for i in np.flatnonzero(~finite):
        n = int(line_numbers[i])
        log.add("non-finite", "skipped line", "NaN or infinite value", n, lines[n - 1])
    values, line_numbers = values[finite], line_numbers[finite]
    with np.errstate(over="ignore"):
        xyz = values[:, :3].astype(np.float32)
    inf32 = ~np.isfinite(xyz).all(axis=1)  # finite in float64 but too large for float32
    for i in np.flatnonzero(inf32):
        n = int(line_numbers[i])
        log.add("non-finite", "skipped line", "coordinate too large for float32", n, lines[n - 1])
    values, line_numbers, xyz = values[~inf32], line_numbers[~inf32], xyz[~inf32]

    rgb = values[:, 3:]
    out_of_range = ((rgb < 0) | (rgb > 255)).any(axis=1)
    for i in np.flatnonzero(out_of_range):
        n = int(line_numbers[i])
        message = f"colour {_numbers(rgb[i])} outside 0..255"
        log.add("colour-range", "clipped to 0..255", message, n, lines[n - 1])
    fraction = (rgb != np.round(rgb)).any(axis=1) & ~out_of_range
    for i in np.flatnonzero(fraction):
        n = int(line_numbers[i])
        message = f"colour {_numbers(rgb[i])} is not integral"
        log.add("colour-fraction", "rounded", message, n, lines[n - 1])
    rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    return xyz, rgb, line_numbers


def parse_annotation_file(
    path: str | os.PathLike, *, name: str | None = None
) -> tuple[np.ndarray, np.ndarray, list[Issue]]:
    """Parse one ``x y z r g b`` annotation file robustly.

    Returns ``xyz`` float32 (n, 3), ``rgb`` uint8 (n, 3) and the issues found (``name`` is the file
    name used in them; default: the path). Repairs: a stray control byte that unambiguously reads as
    a separator or as nothing; colours outside 0..255 are clipped, fractional colours rounded.
    Skipped (and reported): lines that are not six numbers, non-finite values, blank lines.

    Three tiers: a clean file goes whole through the C reader; a file with a few lines holding
    unexpected bytes sends only those lines through the line-by-line parser; anything else
    (wrong column counts, blank lines, out-of-range colours) is parsed line by line.
    """
    path = Path(path)
    log = IssueLog(name or str(path))
    buf = path.read_bytes()
    tried_fast = len(buf) <= _CHUNK_BYTES
    if tried_fast:
        fast = _fast_parse(buf)  # the common case: one clean file, one call of the C reader
        if fast is not None:
            return fast[0], fast[1], log.finish()
    # memchr first: the two-byte search runs at ~1 GB/s, a third of the native parse.
    if b"\r" in buf and b"\r\n" in buf:
        buf = buf.replace(b"\r\n", b"\n")  # Windows line endings: same lines, same numbers
        tried_fast = False
    if _NON_WHITESPACE.search(buf) is None:  # not buf.strip(): no copy of the buffer
        message = "file has no points" + (" (whitespace only)" if buf else "")
        log.add("empty-file", "skipped file", message)
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), log.finish()

    # Chunk by chunk (bounded memory and time on multi-million-line files): each chunk whole
    # through the C reader if it is clean, else only its bad lines line by line, else all of its
    # lines line by line.
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for start, end, lines_before in _chunks(buf, _CHUNK_BYTES):
        log.line_offset = lines_before
        # A file of one chunk that already failed the fast path skips a second attempt.
        parts.append(_parse_chunk(buf[start:end], log, try_fast=not tried_fast))
    log.line_offset = 0
    if len(parts) == 1:
        return parts[0][0], parts[0][1], log.finish()
    xyz = np.concatenate([p[0] for p in parts])
    rgb = np.concatenate([p[1] for p in parts])
    return xyz, rgb, log.finish()


_CHUNK_BYTES = 8 << 20  # ~260k lines


def _chunks(buf: bytes, size: int) -> Iterator[tuple[int, int, int]]:
    """(start, end, lines before start) of ~`size`-byte pieces of `buf` cut after a newline."""
    start, lines_before = 0, 0
    while start < len(buf):
        cut = buf.find(b"\n", min(start + size, len(buf)) - 1)
        end = len(buf) if cut < 0 else cut + 1
        yield start, end, lines_before
        if end < len(buf):  # not after the last chunk: a whole extra pass for one-chunk files
            lines_before += buf.count(b"\n", start, end)
        start = end


def _parse_chunk(
    chunk: bytes, log: IssueLog, *, try_fast: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """xyz float32 (n, 3), rgb uint8 (n, 3) of one chunk; issues use chunk line numbers, which
    the log shifts by its ``line_offset``."""
    if try_fast:
        fast = _fast_parse(chunk)
        if fast is not None:
            return fast
    split = _split_suspects(chunk)
    if split is not None:
        clean_xyz, clean_rgb, clean_numbers, spans = split
        rows, numbers = [], []
        for number, start, end in spans:
            values = _parse_line(number, chunk[start:end], log)
            if values is not None:
                rows.append(values)
                numbers.append(number)
        values = np.array(rows, dtype=np.float64).reshape(-1, 6)
        line_numbers = np.array(numbers, dtype=np.int64)
    else:
        clean_xyz, clean_rgb = np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
        clean_numbers = np.zeros(0, np.int64)
        values, line_numbers = _slow_parse(chunk, log)
    xyz, rgb, line_numbers = _check_rows(values, line_numbers, _Lines(chunk), log)
    if clean_numbers.size:
        # Put the line-by-line rows back between the clean ones, in file order. O(n).
        at = np.searchsorted(clean_numbers, line_numbers)
        xyz = np.insert(clean_xyz, at, xyz, axis=0)
        rgb = np.insert(clean_rgb, at, rgb, axis=0)
    return xyz, rgb
