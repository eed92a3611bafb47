"""What a study prints while it runs: one line per trial event and a summary every minute.

Ray's own status tables repeat every trial's whole config every 30 s; they are shown only
with ``--verbose``. Without it, this driver-side Tune callback is the console:

    trial 3f2a1_00001 started: resnet18 + attnfd, alpha 2.31, layers encoder,decoder, alpha_schedule cosine
    trial 3f2a1_00001: epoch 2/4, val mIoU 0.4412
    trial 3f2a1_00001: stopped by the scheduler after epoch 2 (val mIoU 0.4412)
    [4.0 min] 3 done, 2 running, 3 pending; best val mIoU 0.5120 (trial 3f2a1_00000)
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from ray.tune import Callback

from attnfd.progress import duration
from attnfd.study.trainable import COHORT, MEMBERS, trial_values, units
from attnfd.study_contract import FAILED


def describe(config: dict, shown: list[str]) -> str:
    """``resnet18 + attnfd, alpha 1, layers backbone,encoder,decoder`` from a Tune trial config."""
    values = trial_values(config)
    name = f"{values.get('backbone') or 'resnet18'}"
    name += f" + {values['distill']}" if values.get("distill") else " alone (no distillation)"
    if not values.get("distill"):
        return name
    parts = [name]
    for key in shown:
        if key in ("distill", "backbone") or values.get(key) is None:
            continue
        value = values[key]
        if isinstance(value, float):
            value = f"{value:.3g}"
        elif isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        parts.append(f"{key} {value}")
    return ", ".join(parts)


class TrialEvents(Callback):
    """Prints trial events (unless ``events`` is off: then the minute summaries only);
    ``total`` is the number of trials the study will run, ``shown`` the config fields that
    tell its trials apart."""

    SUMMARY_EVERY_S = 60.0

    def __init__(self, total: int, epochs: int, shown: list[str], events: bool = True,
                 stream: TextIO | None = None):
        self.total, self.epochs, self.shown, self.events = total, epochs, list(shown), events
        self.stream = stream
        self._started = time.monotonic()
        self._last_summary = self._started
        self._last: dict[str, dict] = {}
        self._ended: dict[str, str] = {}

    def _say(self, line: str, event: bool = True) -> None:
        if self.events or not event:
            print(line, file=self.stream or sys.stdout, flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        if COHORT in trial.config:
            cells = units(trial.trial_id, trial.config)
            self._say(f"trial {trial.trial_id} started: a cohort of {len(cells)} students, one data pipeline and "
                      f"teacher forward: " + "; ".join(f"{unit_id} {describe(config, self.shown)}"
                                                      for unit_id, config, _ in cells))
            return
        self._say(f"trial {trial.trial_id} started: {describe(trial.config, self.shown)}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._last[trial.trial_id] = result
        if MEMBERS in result:
            return self._cohort_result(trial, result)
        if result.get("status") == FAILED:
            self._say(f"trial {trial.trial_id} failed at epoch {result.get('epoch')}: {result.get('error')}")
            self._ended[trial.trial_id] = FAILED
            return
        miou = result.get("miou", math.nan)
        score = f", val mIoU {miou:.4f}" if isinstance(miou, float) and math.isfinite(miou) else ""
        self._say(f"trial {trial.trial_id}: epoch {result.get('epoch')}/{self.epochs}{score}")

    def _cohort_result(self, trial, result: dict) -> None:
        scores = []
        for unit_id, config, part in units(trial.trial_id, trial.config, result):
            if part is None:
                continue
            if part.get("status") == FAILED:
                self._say(f"trial {unit_id} ({describe(config, self.shown)}) failed at epoch {part.get('epoch')}: "
                          f"{part.get('error')}; the rest of its cohort goes on")
                continue
            miou = part.get("miou", math.nan)
            scores.append(f"{miou:.4f}" if isinstance(miou, float) and math.isfinite(miou) else "-")
        if scores:
            self._say(f"trial {trial.trial_id}: epoch {result.get('epoch')}/{self.epochs}, val mIoU "
                      + " / ".join(scores))

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = self._last.get(trial.trial_id, {})
        if self._ended.get(trial.trial_id) == FAILED:
            return
        score = last.get("objective", math.nan)
        if last.get("final"):
            self._ended[trial.trial_id] = "completed"
            self._say(f"trial {trial.trial_id} completed: val mIoU {score:.4f}")
        else:
            self._ended[trial.trial_id] = "stopped"
            self._say(f"trial {trial.trial_id}: stopped by the scheduler after epoch {last.get('epoch', 0)} "
                      f"(val mIoU {score:.4f})")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended[trial.trial_id] = FAILED
        message = (getattr(trial, "error_message", None) or "its worker raised an error").strip().splitlines()
        self._say(f"trial {trial.trial_id} failed: {message[-1] if message else 'see its error.txt'}")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._say(f"trial {trial.trial_id}: its worker died; retrying from its last checkpoint")

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        if now - self._last_summary < self.SUMMARY_EVERY_S:
            return
        self._last_summary = now
        self._say(self.summary(trials, now), event=False)

    def summary(self, trials, now: float | None = None) -> str:
        done = sum(1 for t in trials if t.status in ("TERMINATED", "ERROR"))
        running = sum(1 for t in trials if t.status == "RUNNING")
        pending = max(self.total - done - running, 0)
        line = f"[{duration((now or time.monotonic()) - self._started)}] {done} done, {running} running, {pending} pending"
        scores = {tid: r.get("objective", math.nan) for tid, r in self._last.items()
                  if self._ended.get(tid) != FAILED}
        scores = {tid: s for tid, s in scores.items() if isinstance(s, float) and math.isfinite(s) and s > 0}
        if scores:
            best = max(scores, key=scores.get)
            line += f"; best val mIoU so far {scores[best]:.4f} (trial {best})"
        return line
