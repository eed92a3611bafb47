"""``python analysis/ablation.py --watch [SECONDS]``: a running study's tables and report, rebuilt
every few seconds, and how far the study is.

How many trials a study runs comes from its study.json: ``trials``, the first phase's (a
search's reference trial among them), and, for a search with a confirm stage, ``confirm``:
each of its ``cells`` runs once per seed in ``seeds``. The cells are chosen once the search
has ended; before that the stage is known only as up to ``top`` + 2 configs (the search's
``top`` best, the paper's setting when they do not include it, and the student alone; see
``attnfd.study.confirm.choose_cells``).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO, TypeVar

from tqdm.auto import tqdm

from attnfd.analysis.folder import Folder
from attnfd.analysis.results import NoRowsYet, Study, find_study, load_study
from attnfd.study_contract import COMPLETED, CONFIRM, FAILED, FINISHED, SEARCH, STOPPED

T = TypeVar("T")
WAITING = "waiting for the first trial"


def _count(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Progress:
    statuses: Counter
    # the trials known to be planned; None when study.json does not say
    planned: int | None
    # the part of the plan not known yet, in words ("" when it is all known)
    to_come: str
    # every planned trial of every phase has a final status
    finished: bool

    @property
    def ended(self) -> int:
        return sum(self.statuses[s] for s in FINISHED)

    @property
    def running(self) -> int:
        return sum(n for s, n in self.statuses.items() if s not in FINISHED)

    def __str__(self) -> str:
        counts = (f"{self.statuses[COMPLETED]} completed, {self.running} running, {self.statuses[FAILED]} failed, "
                  f"{self.statuses[STOPPED]} stopped")
        total = f"of {self.planned} trials" if self.planned is not None else "of ? trials (study.json gives no count)"
        return f"{counts} {total}" + (f"; {self.to_come}" if self.to_come else "")


def progress(study: Study) -> Progress:
    """How far a study is against what its study.json plans."""
    first, confirm = study.phase(SEARCH).trials, study.phase(CONFIRM).trials

    def ended(trials) -> int:
        return int(trials["status"].isin(FINISHED).sum()) if len(trials) else 0

    planned = _count(study.meta.get("trials"))
    finished = planned is not None and ended(first) >= planned
    to_come = ""
    plan = study.meta.get("confirm")
    if isinstance(plan, dict):
        seeds = len(plan.get("seeds") or [])
        cells = plan.get("cells")
        if cells:
            planned = None if planned is None else planned + len(cells) * seeds
            finished = finished and ended(confirm) >= len(cells) * seeds
        else:
            top = _count(plan.get("top"))
            configs = f"up to {top + 2}" if top is not None else "its"
            to_come = f"confirm stage: {configs} configs x {seeds} seeds to come"
            finished = False
    return Progress(Counter(study.trials["status"]), planned, to_come, finished)


def watch(results: str | Folder | None, every: float, refresh: Callable[[Study], T],
          stream: TextIO | None = None) -> T | None:
    """Every ``every`` seconds: read the study, ``refresh`` (rebuild its tables and report) and
    say how far it is, until every planned trial has ended or Ctrl-C; returns the last refresh's
    result (None when no trial ever reported). The study is the one ``results`` names now (the
    newest, for a storage folder), watched to its end."""
    stream = stream or sys.stdout
    folder = find_study(results)
    warned: set[str] = set()
    # a bar in a terminal; elsewhere (a log, a pipe) tqdm draws nothing and each refresh is one line
    bar = tqdm(desc=folder.name, file=stream, disable=None, dynamic_ncols=True,
               bar_format="{desc}: {n_fmt}/{total_fmt} ended |{bar:30}| {elapsed}{postfix}")

    def say(text: str, ended: int | None = None, planned: int | None = None) -> None:
        if bar.disable:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=stream, flush=True)
            return
        bar.total, bar.n = planned, ended or 0
        bar.set_postfix_str(text)

    def once() -> tuple[T | None, bool]:
        try:
            study = load_study(folder, quiet=True)
        except NoRowsYet:
            say(WAITING)
            return None, False
        for message in study.warnings:
            if message not in warned:  # a file being rewritten, a missing study.json: said once, not per refresh
                warned.add(message)
                bar.write(f"attnfd: warning: {message}", file=sys.stderr)
        result = refresh(study)
        now = progress(study)
        say(str(now), now.ended, now.planned)
        return result, now.finished

    last = None
    try:
        while True:
            result, finished = once()
            last = result if result is not None else last
            if finished:
                break
            time.sleep(every)
    except KeyboardInterrupt:
        # the last report as the study stands now
        result, _ = once()
        last = result if result is not None else last
    finally:
        bar.close()
    return last
