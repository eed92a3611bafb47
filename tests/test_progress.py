"""What a person watching a run or a study reads: the plain epoch lines, the early estimate
and the study's trial events."""

import io
import math
import re

from attnfd.progress import ProgressLog, duration
from attnfd.study.console import TrialEvents, describe
from attnfd.study.trainable import CELL


def test_durations_read_naturally():
    assert duration(42) == "42 s" and duration(210) == "3.5 min" and duration(4 * 3600) == "4.0 h"


def test_an_epoch_line_says_what_trains_where_it_is_and_the_time_left():
    out = io.StringIO()
    log = ProgressLog("teacher resnet101 on shapes", stream=out)
    log.epoch({"epoch": 1, "loss": 0.51234, "miou": 0.41239, "seconds": 30.0}, epochs=4)
    log.epoch({"epoch": 2, "loss": 0.4, "miou": math.nan, "seconds": 50.0}, epochs=4)
    log.epoch({"epoch": 4, "loss": 0.3, "miou": 0.5, "seconds": 40.0}, epochs=4)
    first, second, last = out.getvalue().splitlines()
    assert first == "teacher resnet101 on shapes: epoch 1/4, loss 0.5123, val mIoU 0.4124, 30 s (about 1.5 min left)"
    # an epoch without evaluation shows no score; the time left is the mean epoch so far
    assert second == "teacher resnet101 on shapes: epoch 2/4, loss 0.4000, 50 s (about 80 s left)"
    assert last.endswith("epoch 4/4, loss 0.3000, val mIoU 0.5000, 40 s")


def test_the_early_estimate_speaks_once_after_the_first_steps(monkeypatch):
    out = io.StringIO()
    clock = iter([0.0, 100.0, 120.0])  # made, training begins, the 10th step
    monkeypatch.setattr("attnfd.progress.time.perf_counter", lambda: next(clock))
    log = ProgressLog("student", stream=out)
    log.begin()
    for done in range(1, 30):
        log.step(done, 100)
    (line,) = out.getvalue().splitlines()
    # 10 steps took 20 s on the fake clock: 90 more take 180 s
    assert line == "student: 10 of 100 steps in 20 s; about 3.0 min of training left"


class FakeTrial:
    def __init__(self, trial_id, status="RUNNING", config=None):
        self.trial_id, self.status, self.config = trial_id, status, config or {}


def test_trial_events_one_line_each_and_a_summary():
    out = io.StringIO()
    events = TrialEvents(total=5, epochs=4, shown=["alpha", "layers"], stream=out)
    a = FakeTrial("a", config={"backbone": "resnet18", "distill": "attnfd", "alpha": 2.3456, "layers": "encoder"})
    b = FakeTrial("b", config={CELL: {"backbone": "mobilenet_v2", "distill": None}})
    events.on_trial_start(0, [a], a)
    events.on_trial_start(0, [a, b], b)
    events.on_trial_result(0, [a, b], a, {"epoch": 1, "miou": 0.41, "objective": 0.41})
    events.on_trial_result(0, [a, b], b, {"epoch": 1, "miou": 0.30, "objective": 0.30})
    events.on_trial_complete(0, [a, b], a)
    events.on_trial_result(0, [a, b], b, {"epoch": 2, "status": "failed", "error": "loss is nan at epoch 2, step 3"})
    events.on_trial_complete(0, [a, b], b)
    a.status, b.status = "TERMINATED", "TERMINATED"
    lines = out.getvalue().splitlines()
    assert lines == [
        "trial a started: resnet18 + attnfd, alpha 2.35, layers encoder",
        "trial b started: mobilenet_v2 alone (no distillation)",
        "trial a: epoch 1/4, val mIoU 0.4100",
        "trial b: epoch 1/4, val mIoU 0.3000",
        "trial a: stopped by the scheduler after epoch 1 (val mIoU 0.4100)",
        "trial b failed at epoch 2: loss is nan at epoch 2, step 3",
    ]
    summary = events.summary([a, b, FakeTrial("c")])
    # the failed trial's score is not the best; the pending count includes trials not yet created
    assert re.fullmatch(r"\[\d+ s\] 2 done, 1 running, 2 pending; best val mIoU so far 0\.4100 \(trial a\)", summary)


def test_describe_reads_a_grid_cell():
    config = {"seed": 1, CELL: {"backbone": "resnet18", "distill": "kd", "alpha": 1.0}}
    assert describe(config, ["distill"]) == "resnet18 + kd"
