"""Problems found while parsing raw S3DIS rooms, and what was done about each (`Issue`).

Every repaired or skipped line, skipped file and failed room becomes one :class:`Issue`;
`prepare_s3dis` writes them all to ``prepare_report.jsonl``. :class:`IssueLog` caps line-level
entries per kind so a badly damaged file does not flood the report.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

# Line-level issues beyond this many per (file, kind) are summarised in one entry with the count.
MAX_LINE_ISSUES_PER_KIND = 50


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


def escape_bytes(raw: bytes, limit: int = 200) -> str:
    """Printable form of a raw line: ASCII kept, every other byte as ``\\xNN``."""
    text = repr(raw[:limit])[2:-1]
    return text + ("..." if len(raw) > limit else "")


class IssueLog:
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
                raw=None if raw is None else escape_bytes(raw),
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
