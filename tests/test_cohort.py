"""A cohort: several students on one data pipeline and one teacher forward, each with the
numbers it gets alone.

On the CPU at a fixed thread count the kernels are deterministic, so "the same" is bit for
bit: every row value but the wall time, and every weight.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import TINY, with_teacher

from attnfd import checkpoint as ckpt
from attnfd.config import ConfigError, TrainConfig
from attnfd.trainer import Cohort, NonFiniteLossError, cohort_problem, fit, fit_cohort, member_folder

# a student alone, AttnFD and KD: three cells of one seed
CELLS = [{"distill": None}, {"distill": "attnfd"}, {"distill": "kd"}]


def _strip(row: dict) -> dict:
    """A row without its wall time, NaN as a string so rows compare with ==."""
    fix = lambda v: "nan" if isinstance(v, float) and math.isnan(v) else v
    return {k: [fix(x) for x in v] if isinstance(v, list) else fix(v) for k, v in row.items() if k not in ("seconds", "shared_seconds")}


@pytest.fixture(scope="module")
def base(module_tmp, teacher_cache):
    # dropout, momentum and two epochs: anything a student could take from another shows up
    values = {**TINY, "cache_dir": teacher_cache, "threads": 1, "seed": 4, "epochs": 2, "train_size": 12}
    # the one teacher of the distilling cells
    with_teacher({**values, "distill": "attnfd"})
    return values


@pytest.fixture(scope="module")
def alone(base, module_tmp):
    """Each cell's rows and final weights, trained by itself."""
    results = []
    for i, cell in enumerate(CELLS):
        rows = []
        out = module_tmp / f"alone-{i}"
        fit({**base, **cell, "out_dir": str(out)}, lambda row, _, rows=rows: rows.append(_strip(row)))
        results.append((rows, ckpt.load(out / ckpt.MODEL_FILE)["model"]))
    return results


def _cohort(base, folder: Path, cells=CELLS, resume=None, report=None) -> list[list[dict]]:
    rows = [[] for _ in cells]

    def record(epoch_rows, checkpoint_dir):
        for kept, row in zip(rows, epoch_rows):
            if row is not None:
                kept.append(_strip(row))
        if report is not None:
            report(epoch_rows, checkpoint_dir)

    fit_cohort([{**base, **cell} for cell in cells], folder, record, resume=resume)
    return rows


def test_a_cohort_gives_each_student_its_numbers_alone(base, alone, module_tmp):
    folder = module_tmp / "cohort"
    rows = _cohort(base, folder)
    for index, (alone_rows, alone_weights) in enumerate(alone):
        assert [r["epoch"] for r in rows[index]] == [1, 2]
        assert rows[index] == alone_rows, CELLS[index]
        weights = ckpt.load(member_folder(folder, index) / ckpt.MODEL_FILE)["model"]
        assert all(torch.equal(weights[k], v) for k, v in alone_weights.items()), CELLS[index]
    # the distilled students did distil, each with its own parts
    assert "loss_attnfd.decoder" in rows[1][0] and "loss_kd" in rows[2][0]


def test_the_order_of_a_cohort_changes_no_student(base, alone, module_tmp):
    rows = _cohort(base, module_tmp / "reversed", cells=CELLS[::-1])
    assert rows[::-1] == [a for a, _ in alone]


def test_a_diverging_student_leaves_and_the_others_go_on(base, alone, module_tmp):
    cells = [CELLS[0], {"distill": None, "lr": 1e12}, CELLS[1]]
    folder = module_tmp / "diverging"
    rows = _cohort(base, folder, cells=cells)
    assert rows[0] == alone[0][0] and rows[2] == alone[1][0]
    assert len(rows[1]) == 1 and rows[1][0]["epoch"] == 1
    assert rows[1][0]["error"].startswith("loss is") and "epoch 1, step" in rows[1][0]["error"]
    assert not (member_folder(folder, 1) / ckpt.MODEL_FILE).exists()
    # alone, the same config raises: a run of one has nobody to go on with
    with pytest.raises(NonFiniteLossError, match="epoch 1, step"):
        fit({**base, **cells[1], "out_dir": str(module_tmp / "diverging-alone")})


def test_a_stopped_cohort_resumes_exactly_and_a_student_resumes_alone(base, alone, module_tmp):
    folder = module_tmp / "interrupted"

    def stop(rows, checkpoint_dir):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _cohort(base, folder, report=stop)
    checkpoint = folder / "checkpoint"
    resumed = _cohort(base, module_tmp / "resumed", resume=checkpoint)
    assert resumed == [a[1:] for a, _ in alone]
    # each student's part of the cohort's checkpoint is a run checkpoint: it continues alone
    rows = []
    fit({**base, **CELLS[1], "resume": str(member_folder(checkpoint, 1)), "out_dir": str(module_tmp / "one")},
        lambda row, _: rows.append(_strip(row)))
    assert rows == alone[1][0][1:]


def test_only_students_of_the_same_batches_and_teacher_share_a_cohort(base):
    configs = lambda *cells: [TrainConfig.from_dict({**base, **c}) for c in cells]
    assert cohort_problem(configs({}, {"distill": "attnfd", "backbone": "mobilenet_v2", "alpha": 3.0})) is None
    assert "seed" in cohort_problem(configs({}, {"seed": 5}))
    assert "batch_size" in cohort_problem(configs({}, {"batch_size": 2}))
    assert "teachers" in cohort_problem(configs({"distill": "kd"}, {"distill": "kd", "teacher_backbone": "resnet34"}))
    with pytest.raises(ConfigError, match="cannot share a cohort: its students differ in epochs"):
        Cohort(configs({}, {"epochs": 3}))
