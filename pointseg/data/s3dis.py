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

import dataclasses
import hashlib
import io
import itertools
import json
import multiprocessing
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pointseg import _native as _native_switch
from pointseg.errors import DataError
from pointseg.io import atomic_write, atomic_write_text

# --------------------------------------------------------------------------------------------
# Class table (DESIGN §4: this order, these colours; key result tables by name, not index)
# --------------------------------------------------------------------------------------------

CLASSES: tuple[str, ...] = (
    "ceiling",
    "floor",
    "wall",
    "beam",
    "column",
    "window",
    "door",
    "table",
    "chair",
    "sofa",
    "bookcase",
    "board",
    "clutter",
)
NUM_CLASSES = len(CLASSES)
CLUTTER_ID = CLASSES.index("clutter")
CLASS_TO_ID: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
CLASS_COLORS: np.ndarray = np.array(
    [
        (0, 255, 0),  # ceiling
        (0, 0, 255),  # floor
        (0, 255, 255),  # wall
        (255, 255, 0),  # beam
        (255, 0, 255),  # column
        (100, 100, 255),  # window
        (200, 200, 100),  # door
        (170, 120, 200),  # table
        (255, 0, 0),  # chair
        (200, 100, 100),  # sofa
        (10, 200, 100),  # bookcase
        (200, 200, 200),  # board
        (50, 50, 50),  # clutter
    ],
    dtype=np.uint8,
)
CLASS_COLORS.setflags(write=False)

INDEX_VERSION = 1
INDEX_NAME = "index.json"
REPORT_NAME = "prepare_report.jsonl"
CACHE_KEYS = ("xyz", "rgb", "label", "instance")

# Seconds between index.json rewrites while rooms complete (and always at the end / on Ctrl-C).
INDEX_WRITE_INTERVAL = 1.0

# Line-level issues beyond this many per (file, kind) are summarised in one entry with the count.
MAX_LINE_ISSUES_PER_KIND = 50


def class_name_to_id(name: str, *, strict: bool = False) -> int:
    """Map an S3DIS class name (case-insensitive) to its DESIGN §4 index.

    Unknown names (e.g. ``stairs``) map to clutter, as in the raw-data convention; with
    ``strict=True`` they raise ``KeyError`` listing the valid names instead.
    """
    key = name.strip().lower()
    if key in CLASS_TO_ID:
        return CLASS_TO_ID[key]
    if strict:
        raise KeyError(f"unknown S3DIS class {name!r}; valid: {', '.join(CLASSES)}")
    return CLUTTER_ID


# --------------------------------------------------------------------------------------------
# Issues
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Issue:
    """One problem found while parsing, and what was done about it.

    ``kind`` is a short machine-readable tag (``control-byte``, ``bad-columns``, ``not-numeric``,
    ``non-finite``, ``colour-range``, ``colour-fraction``, ``blank-line``, ``empty-file``,
    ``duplicate-file``, ``unknown-class``, ``missing-annotations``, ``room-failed``, ...);
    ``action`` says what happened (``repaired``, ``skipped line``, ``clipped``, ``skipped file``,
    ``mapped to clutter``, ``room failed``, ...). ``raw`` is the offending line with non-printable
    bytes escaped (``185\\x00187``).
    """

    kind: str
    action: str
    message: str
    file: str | None = None
    line: int | None = None
    raw: str | None = None
    area: str | None = None
    room: str | None = None
    count: int = 1  # > 1 for a summary entry standing for several lines

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Issue:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
        raw = f" raw='{self.raw}'" if self.raw is not None else ""
        return f"{where}: {self.kind}: {self.message} -> {self.action}{raw}"


def _escape(raw: bytes, limit: int = 200) -> str:
    """Printable form of a raw line: ASCII kept, every other byte as ``\\xNN``."""
    text = repr(raw[:limit])[2:-1]
    return text + ("..." if len(raw) > limit else "")


class _IssueLog:
    """Collects issues of one file, capping line-level entries per (kind, action): the lines
    beyond the cap are counted in one summary entry, never dropped silently."""

    def __init__(self, file: str):
        self.file = file
        self.issues: list[Issue] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self.line_offset = 0  # lines before the chunk being parsed

    def add(
        self,
        kind: str,
        action: str,
        message: str,
        line: int | None = None,
        raw: bytes | None = None,
    ) -> None:
        if line is not None:
            line += self.line_offset
            # "repaired (\x00 at byte 3 -> space)" and "repaired (...)" count together
            key = (kind, action.split(" (")[0])
            self._counts[key] += 1
            if self._counts[key] > MAX_LINE_ISSUES_PER_KIND:
                return
        self.issues.append(
            Issue(
                kind,
                action,
                message,
                file=self.file,
                line=line,
                raw=None if raw is None else _escape(raw),
            )
        )

    def finish(self) -> list[Issue]:
        for (kind, action), n in self._counts.items():
            extra = n - MAX_LINE_ISSUES_PER_KIND
            if extra > 0:
                self.issues.append(
                    Issue(
                        kind,
                        action,
                        f"{extra} more lines with this problem (only the first "
                        f"{MAX_LINE_ISSUES_PER_KIND} are listed; {n} in total)",
                        file=self.file,
                        count=extra,
                    )
                )
        return self.issues


# --------------------------------------------------------------------------------------------
# One annotation file
# --------------------------------------------------------------------------------------------

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
            f"{_escape(line[p : p + 1])} at byte {p} {'-> space' if r else 'deleted'}"
            for p, r in zip(spans, choice, strict=True)
        )
        out.append((b"".join(parts), what))
    return out


def _parse_line(number: int, raw: bytes, log: _IssueLog) -> list[float] | None:
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


def _slow_parse(buf: bytes, log: _IssueLog) -> tuple[np.ndarray, np.ndarray]:
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
    values: np.ndarray, line_numbers: np.ndarray, lines: _Lines, log: _IssueLog
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
    log = _IssueLog(name or str(path))
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
    chunk: bytes, log: _IssueLog, *, try_fast: bool = True
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


# --------------------------------------------------------------------------------------------
# One room
# --------------------------------------------------------------------------------------------


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


def _natural_key(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _file_order(path: Path) -> tuple:
    """Natural order of annotation files, a copy `wall_3 (1).txt` right after `wall_3.txt`."""
    dup = _DUPLICATE_RE.match(path.stem)
    base, n = (dup["base"], int(dup["n"])) if dup else (path.stem, 0)
    return (_natural_key(base), n, path.name)


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


# --------------------------------------------------------------------------------------------
# Cache: write / read
# --------------------------------------------------------------------------------------------


def save_room(path: str | os.PathLike, room: RoomData) -> None:
    """Write the canonical ``.npz`` atomically (uncompressed: loading is memory-speed)."""
    with atomic_write(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        # A file object, not a path: np.savez would append ".npz" to the temp name.
        np.savez(fh, xyz=room.xyz, rgb=room.rgb, label=room.label, instance=room.instance)
        # mkstemp creates 0600 files; a shared cache should be readable like any other output.
        os.chmod(tmp, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_EXPECTED = {
    "xyz": (np.float32, 2),
    "rgb": (np.uint8, 2),
    "label": (np.uint8, 1),
    "instance": (np.int32, 1),
}


def load_room(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a cached room: ``{"xyz" float32 (n,3), "rgb" uint8 (n,3), "label" uint8 (n,),
    "instance" int32 (n,)}``. Raises DataError naming the file and the bad array."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except Exception as exc:  # zip / format errors: a damaged cache file
        raise DataError(
            f"{path}: not a readable room cache ({exc}); rerun `pointseg prepare s3dis --force`"
        ) from exc
    missing = [k for k in CACHE_KEYS if k not in data]
    if missing:
        raise DataError(f"{path}: room cache lacks {missing}; expected keys {list(CACHE_KEYS)}")
    n = data["xyz"].shape[0]
    for key, (dtype, ndim) in _EXPECTED.items():
        arr = data[key]
        shape_ok = arr.ndim == ndim and arr.shape[0] == n and (ndim == 1 or arr.shape[1] == 3)
        if arr.dtype != dtype or not shape_ok:
            want = f"({n}, 3)" if ndim == 2 else f"({n},)"
            raise DataError(
                f"{path}: array {key!r} is {arr.dtype} {arr.shape}, expected {np.dtype(dtype)} {want}"
            )
    return data


def read_index(root: str | os.PathLike) -> dict[str, Any]:
    """Read ``<root>/index.json`` written by :func:`prepare_s3dis`."""
    path = Path(root) / INDEX_NAME
    if not path.is_file():
        raise DataError(
            f"{path}: no room index; run `pointseg prepare s3dis --raw <...> --out {root}` first"
        )
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); rerun `pointseg prepare s3dis`") from exc
    if not isinstance(index, dict) or index.get("version") != INDEX_VERSION or "rooms" not in index:
        raise DataError(f"{path}: not a version-{INDEX_VERSION} S3DIS room index")
    return index


def normalize_area(area: int | str) -> str:
    """``1``, ``"1"``, ``"Area_1"``, ``"area_1"`` -> ``"Area_1"``."""
    text = str(area).strip()
    m = re.fullmatch(r"(?i:area_?)?(\d+)", text)
    if not m:
        raise ValueError(f"bad S3DIS area {area!r}: expected a number 1-6 or 'Area_N'")
    return f"Area_{int(m[1])}"


def list_rooms(
    root: str | os.PathLike, areas: Iterable[int | str] | None = None
) -> list[dict[str, Any]]:
    """Index entries of the cached rooms (optionally only ``areas``), sorted by area and room.

    Each entry is the ``index.json`` record plus ``"path"``: the absolute path of its ``.npz``.
    """
    root = Path(root)
    index = read_index(root)
    wanted = None if areas is None else {normalize_area(a) for a in areas}
    rooms = []
    for entry in index["rooms"]:
        if wanted is not None and entry["area"] not in wanted:
            continue
        rooms.append({**entry, "path": str((root / entry["file"]).resolve())})
    rooms.sort(key=lambda e: (_natural_key(e["area"]), _natural_key(e["room"])))
    return rooms


# --------------------------------------------------------------------------------------------
# prepare_s3dis: every room, in parallel, resumable
# --------------------------------------------------------------------------------------------

_AREA_RE = re.compile(r"^Area_(\d+)$")


def find_area_root(raw: str | os.PathLike) -> Path:
    """The folder holding ``Area_N`` folders: ``raw`` itself, or a ``Stanford3dDataset_v1.2*``
    (aligned or not) folder at most two levels below it."""
    raw = Path(raw)
    if not raw.is_dir():
        raise DataError(f"--raw {raw}: not a folder")

    def has_areas(p: Path) -> bool:
        # Area_N folders holding room folders (a pointseg cache's Area_N hold only .npz files).
        return any(
            c.is_dir() and _AREA_RE.match(c.name) and any(r.is_dir() for r in c.iterdir())
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(entry: dict[str, Any], out: Path, source: dict[str, int]) -> bool:
    """A cached room is done if its npz has the recorded size and checksum and the raw room is unchanged."""
    path = out / entry.get("file", "")
    try:
        if path.stat().st_size != entry.get("bytes"):
            return False
    except OSError:
        return False
    return entry.get("source") == source and _sha256(path) == entry.get("sha256")


def _remove_orphans(path: Path) -> None:
    """Delete temp files of `path` left by a killed earlier run (atomic_write names them
    `.<name>.<random>.npz.tmp`); concurrent runs on one cache folder are not supported."""
    if not path.parent.is_dir():
        return
    prefix, suffix = f".{path.name}.", ".npz.tmp"
    for name in os.listdir(path.parent):
        if name.startswith(prefix) and name.endswith(suffix):
            (path.parent / name).unlink(missing_ok=True)


def _prepare_room(task: RoomTask) -> dict[str, Any]:
    """Worker: parse one room and write its npz. Never raises (the failure is returned)."""
    t0 = time.perf_counter()
    room_dir = Path(task.room_dir)
    try:
        source = _source_fingerprint(room_dir)
        data, issues = parse_room(room_dir)
        path = Path(task.out) / task.out_file
        _remove_orphans(path)
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
            "sha256": _sha256(path),
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
    entries = sorted(
        rooms.values(), key=lambda e: (_natural_key(e["area"]), _natural_key(e["room"]))
    )
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
        (p for p in area_root.iterdir() if p.is_dir() and _AREA_RE.match(p.name)),
        key=lambda p: _natural_key(p.name),
    )
    if wanted is not None:
        missing = sorted(wanted - {p.name for p in area_dirs}, key=_natural_key)
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
            key=lambda p: _natural_key(p.name),
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
            rooms.values(), key=lambda e: (_natural_key(e["area"]), _natural_key(e["room"]))
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
    for area in sorted(per_area, key=_natural_key):
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
]
