"""Resident memory of this process: the current value and the peak so far."""

from __future__ import annotations

import os
import resource
import sys


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far in MiB (`ru_maxrss`: KiB on Linux, B on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def current_rss() -> int:
    """Current resident memory in bytes (`/proc/self/statm`); elsewhere the peak so far, an upper
    bound."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return int(peak_rss_mb() * (1 << 20))
