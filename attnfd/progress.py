"""What a person watching a run reads: one plain line per epoch, and an early estimate.

tqdm bars show the steps inside an epoch in a terminal and switch themselves off elsewhere (a
log file, nohup, a batch job), so the lines here are what such a log holds: what is
training, epoch/total, loss, val mIoU, seconds and the time left. A run started without a
``ProgressLog`` (a study's trials, tests) prints nothing; the study's driver speaks for them.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


def duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``1.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressLog:
    """Prints ``<label>: epoch 3/16, loss 0.412, val mIoU 0.5123, 38 s (about 8.2 min left)``."""

    # the first estimate comes after this many steps: enough to pass the first slow ones
    ESTIMATE_AFTER_STEPS = 10

    def __init__(self, label: str, stream: TextIO | None = None):
        self.label = label
        self.stream = stream
        self._estimated = False
        self._epoch_seconds: list[float] = []
        self._started = time.perf_counter()

    def begin(self) -> None:
        """Training starts now (data, model and teacher are ready)."""
        self._started = time.perf_counter()

    def say(self, message: str) -> None:
        print(f"{self.label}: {message}", file=self.stream or sys.stdout, flush=True)

    def step(self, done: int, total: int) -> None:
        """Called after every training step of the run; speaks once, after the first few."""
        if self._estimated or done < self.ESTIMATE_AFTER_STEPS or done >= total:
            return
        self._estimated = True
        seconds = time.perf_counter() - self._started
        left = seconds / done * (total - done)
        self.say(f"{done} of {total} steps in {duration(seconds)}; about {duration(left)} of training left")

    def epoch(self, row: dict, epochs: int) -> None:
        # a resumed run's earlier epochs ran elsewhere: only this process's epochs time the rest
        self._epoch_seconds.append(row["seconds"])
        per_epoch = sum(self._epoch_seconds) / len(self._epoch_seconds)
        done = row["epoch"]
        parts = [f"epoch {done}/{epochs}", f"loss {row['loss']:.4f}"]
        miou = row.get("miou", math.nan)
        if math.isfinite(miou):
            parts.append(f"val mIoU {miou:.4f}")
        parts.append(duration(row["seconds"]))
        line = ", ".join(parts)
        if done < epochs:
            line += f" (about {duration(per_epoch * (epochs - done))} left)"
        self.say(line)
