"""``analysis/ablation.py --watch``: a search with a confirm stage, written trial by trial while a
watcher runs, as the study's writer would write it; the watcher's lines, and its end."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from analysis_results_folder import CLASSES, trial, write_meta, write_trial

REPO = Path(__file__).resolve().parents[1]
SEARCHED = {"alpha": {"type": "loguniform", "low": 0.1, "high": 10.0},
            "layers": {"type": "choice", "values": ["encoder", "decoder"]}}
CONFIRM_SEEDS = [1, 2]
# each refresh reads and analyses the whole study; a line is waited for this long at most
PATIENCE_S = 60


class Watcher:
    """``ablation.py --watch`` in a subprocess (stdout a pipe, so one plain line per refresh)."""

    def __init__(self, folder: Path, every: float = 0.2):
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        # a suite started in the background (nohup, `&`) ignores SIGINT, a child inherits an
        # ignored signal, and Python then raises no KeyboardInterrupt: a handled one is reset
        # to the default in the child, as a terminal's foreground job has it
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.proc = subprocess.Popen([sys.executable, "analysis/ablation.py", "--results", str(folder), "--watch",
                                          str(every)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
        finally:
            signal.signal(signal.SIGINT, previous)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str) -> str:
        """The first line from now on that matches ``pattern`` (a regex searched in the line)."""
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r}; seen: {self.seen[-8:]}; stderr: {self._stderr()}")

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read()[-2000:]

    def finish(self, timeout: float = PATIENCE_S) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=timeout)
        rest = self.proc.stdout.read() if not self.proc.stdout.closed else ""
        time.sleep(0.05)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code, "\n".join(self.seen) + rest, self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def watcher_of():
    started: list[Watcher] = []

    def start(folder: Path, every: float = 0.2) -> Watcher:
        started.append(Watcher(folder, every))
        return started[-1]

    yield start
    for w in started:
        w.stop()


def searched(trial_id: str, miou: float, alpha: float, layers: str, **kw) -> list[dict]:
    return trial(trial_id, [(miou - 0.05, miou, [0.9, miou, 0.5], 2.0), (miou, miou, [0.9, miou, 0.5], 1.0)],
                 distill="attnfd", alpha=alpha, layers=layers, phase="search", seed=0, **kw)


def test_the_watcher_follows_a_search_and_its_confirm_stage_to_the_end(tmp_path, watcher_of):
    study = tmp_path / "watched"
    # 2 searched trials and the reference; the confirm stage's best 1 config, over 2 seeds
    write_meta(study, protocol="search", seeds=[0], class_names=CLASSES, searched=SEARCHED, trials=3,
               confirm={"top": 1, "seeds": CONFIRM_SEEDS, "search_seed": 0})
    watcher = watcher_of(study)
    watcher.wait_for(r"waiting for the first trial$")

    first = searched("aaa", 0.6, 1.0, "decoder")
    write_trial(study, first[:1], protocol="search")  # its first epoch: running
    watcher.wait_for(r"0 completed, 1 running, 0 failed, 0 stopped of 3 trials; "
                     r"confirm stage: up to 3 configs x 2 seeds to come$")

    # a trial's file caught half-written: said once on stderr, the rest is read
    data = write_trial(tmp_path / "scratch" / study.name, searched("bbb", 0.7, 2.0, "encoder"), protocol="search").read_bytes()
    half = study / "results" / "epochs" / "bbb.parquet"
    half.write_bytes(data[: len(data) // 2])
    write_trial(study, first, protocol="search")
    watcher.wait_for(r"^\[\d\d:\d\d:\d\d\] 1 completed, 0 running, 0 failed, 0 stopped of 3 trials")
    half.write_bytes(data)
    write_trial(study, trial("ref", [(0.5, 0.6, [0.9, 0.5, 0.4], 1.0)], phase="search", seed=0), protocol="search")
    # the search has ended, but the confirm stage's cells are not chosen yet: the watcher goes on
    watcher.wait_for(r"3 completed, 0 running, 0 failed, 0 stopped of 3 trials; confirm stage: up to 3 configs")

    cells = [{"values": {"alpha": 2.0, "layers": "encoder"}, "search_rank": 1, "search_trial": "bbb",
              "search_miou": 0.7, "paper": False, "reference": False},
             {"values": {"alpha": 1.0, "layers": "decoder"}, "search_rank": 2, "search_trial": "aaa",
              "search_miou": 0.6, "paper": True, "reference": False},
             {"values": {"distill": None}, "search_rank": None, "search_trial": "ref", "search_miou": 0.5,
              "paper": False, "reference": True}]
    write_meta(study, protocol="search", seeds=[0], class_names=CLASSES, searched=SEARCHED, trials=3,
               confirm={"top": 1, "seeds": CONFIRM_SEEDS, "search_seed": 0, "completed": 2, "cells": cells})
    watcher.wait_for(r"3 completed, 0 running, 0 failed, 0 stopped of 9 trials$")  # 3 + 3 cells x 2 seeds

    confirm = []
    for seed in CONFIRM_SEEDS:
        confirm += [trial(f"c_best_{seed}", [(0.72 + seed / 100, 0.8, [0.9, 0.7, 0.5], 1.0)], distill="attnfd",
                          alpha=2.0, layers="encoder", phase="confirm", seed=seed),
                    trial(f"c_paper_{seed}", [(0.61 + seed / 100, 0.7, [0.9, 0.6, 0.5], 1.0)], distill="attnfd",
                          alpha=1.0, layers="decoder", phase="confirm", seed=seed),
                    trial(f"c_ref_{seed}", [(0.5 + seed / 100, 0.6, [0.9, 0.5, 0.4], 1.0)], phase="confirm",
                          seed=seed)]
    confirm[-1] = trial("c_ref_2", [(0.5, 0.6, [0.9, 0.5, 0.4], 1.0)], phase="confirm", seed=2, status="failed",
                        error="loss is nan at epoch 1, step 2")
    for rows in confirm[:-1]:
        write_trial(study, rows, protocol="search")
    watcher.wait_for(r"8 completed, 0 running, 0 failed, 0 stopped of 9 trials$")
    assert watcher.proc.poll() is None, "the watcher ended before the last planned trial"
    write_trial(study, confirm[-1], protocol="search")
    watcher.wait_for(r"8 completed, 0 running, 1 failed, 0 stopped of 9 trials$")
    code, out, err = watcher.finish()
    assert code == 0, err
    # it ends as a plain run does: the tables, then where it wrote
    assert "Confirmation over seeds 1, 2" in out and re.search(r"wrote \d+ files to .*watched/analysis", out)
    assert err.count("could not read bbb.parquet") == 1, err
    report = (study / "analysis" / "report.html").read_text()
    assert "9 completed" not in report and "8 completed" in report and "1 failed" in report


def test_ctrl_c_writes_the_last_report_and_exits_0(tmp_path, watcher_of):
    study = tmp_path / "stopped"
    write_meta(study, protocol="layers", seeds=[0, 1], class_names=CLASSES, trials=4)
    write_trial(study, trial("t_00000", [(0.6, 0.7, [0.9, 0.5, 0.4], 1.0)], phase="grid", seed=0), protocol="layers")
    watcher = watcher_of(study, every=30)  # a long wait: the interrupt comes during the sleep
    watcher.wait_for(r"1 completed, 0 running, 0 failed, 0 stopped of 4 trials$")
    write_trial(study, trial("t_00001", [(0.62, 0.7, [0.9, 0.5, 0.4], 1.0)], phase="grid", seed=1), protocol="layers")
    watcher.proc.send_signal(signal.SIGINT)
    code, out, err = watcher.finish()
    assert code == 0, err
    # the refresh after Ctrl-C saw the second trial
    assert re.search(r"2 completed, 0 running, 0 failed, 0 stopped of 4 trials$", out, re.MULTILINE), out
    assert "Table 3: distilled layers" in out and "Traceback" not in err
    assert "2 completed" in (study / "analysis" / "report.html").read_text()
