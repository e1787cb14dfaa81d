"""A run's logs on rank 0: log.csv (one row per epoch), steps.csv (one row per step),
curves.png and TensorBoard events, rendered from the trainer's in-memory history."""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from pathlib import Path
from typing import Any

from pointseg.io import atomic_write_text

# log.csv columns that are not scalars worth a TensorBoard curve
_NOT_SCALARS = ("epoch", "step", "time_s", "throughput_unit", "metric")


class RunLog:
    def __init__(self, run_dir: Path, columns: tuple[str, ...], title: str, is_main: bool):
        self.run_dir = run_dir
        self.columns = columns
        self.title = title
        self.is_main = is_main
        self.writer = None
        self._last_plot = -math.inf

    def write(
        self, history: list[dict], steps: list[list[float]], plot: bool | None = None
    ) -> None:
        """log.csv, steps.csv and curves.png (rank 0).

        Plotting costs ~1 s, so with `plot=None` curves.png is redrawn at most once a minute; the
        last epoch and interruptions pass `plot=True`.
        """
        if not self.is_main:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow(
                {
                    k: ("" if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in row.items()
                }
            )
        atomic_write_text(self.run_dir / "log.csv", buf.getvalue())
        buf = io.StringIO()
        buf.write("step,epoch,lr,loss\n")
        for s in steps:
            buf.write(f"{int(s[0])},{s[1]:.6f},{s[2]:.8g},{s[3]:.8g}\n")
        atomic_write_text(self.run_dir / "steps.csv", buf.getvalue())
        now = time.monotonic()
        if plot is None:
            plot = now - self._last_plot >= 60.0
        if plot and history:
            from pointseg.engine.plots import plot_history

            self._last_plot = now
            plot_history(history, self.run_dir / "curves.png", title=self.title, steps=steps)

    def open_tensorboard(self, enabled: bool, purge_step: int | None) -> None:
        if not (enabled and self.is_main):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # tensorboard not installed: logs and plots still work
            print(
                f"warning: TensorBoard logging disabled ({exc}); log.csv and curves.png are still written",
                file=sys.stderr,
            )
            return
        # purge_step drops events a crashed run wrote after the checkpoint we resume from.
        self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge_step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def epoch_scalars(self, row: dict[str, Any], epoch: int) -> None:
        """Every finite numeric column of an epoch's row, as `train/loss`, `val/miou`, `lr`, …"""
        if self.writer is None:
            return
        for k in self.columns:
            v = row.get(k)
            if k not in _NOT_SCALARS and isinstance(v, float) and math.isfinite(v):
                self.writer.add_scalar(k.replace("_", "/", 1), v, epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
