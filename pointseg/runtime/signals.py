"""SIGINT/SIGTERM as a flag the training loop checks after each step, and the error it raises."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

from pointseg.errors import PointsegError


class TrainingInterrupted(PointsegError):
    """Raised after a resumable `last.pt` was written because of SIGINT/SIGTERM."""

    def __init__(self, signum: int, run_dir: Path, epoch: int, step: int):
        self.signum = signum
        self.run_dir = run_dir
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(
            f"training stopped by {name} at epoch {epoch + 1}, step {step}; saved {run_dir / 'last.pt'} "
            f"— resume with --resume (same --run/--out)"
        )


class StopSignals:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step (the step finishes first).

    A second Ctrl-C while the checkpoint is not yet written raises KeyboardInterrupt immediately.
    Outside the main thread (no handlers can be installed there) the flag stays unset.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\n{signal.Signals(signum).name} received: finishing this step, then saving last.pt",
            file=sys.stderr,
        )

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
