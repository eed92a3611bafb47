"""Grid studies run as cohorts (``--cohort``): one Tune trial trains several cells of a seed,
and each cell's rows are the rows it gets as a trial of its own."""

import math
import os
import signal
import threading
import time
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
from conftest import TINY
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from attnfd.config import TrainConfig
from attnfd.study.cohorts import chunks, pack, parse_cohort
from attnfd.study.runner import StudySpec, run_study

pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("local_ray")

CELLS = [{"distill": None}, {"distill": "attnfd", "layers": "decoder"}, {"distill": "kd"},
         {"distill": None, "lr": 1e12}]
# what differs between a cell run alone and in a cohort: where and when it ran, and its ids
PLACE = {"study", "trial_id", "cohort", "node", "pid", "time", "seconds", "shared_seconds", "node_id"}


def base(teacher_cache, **changes):
    return {**TINY, "cache_dir": teacher_cache, "role": "student", "train_size": 12, **changes}


def rows_by_cell(storage, name):
    folder = Path(storage) / name / "results" / "epochs"
    cells = {}
    for path in sorted(folder.glob("*.parquet")):
        rows = pq.read_table(path).to_pylist()
        cells[(rows[0]["config/distill"], rows[0]["config/layers"], rows[0]["config/lr"])] = rows
    return cells


def comparable(rows):
    fix = lambda v: "nan" if isinstance(v, float) and math.isnan(v) else v
    return [{k: [fix(x) for x in v] if isinstance(v, list) else fix(v) for k, v in r.items() if k not in PLACE}
            for r in rows]


def test_a_cohort_study_writes_each_cells_rows_as_its_own_trial_would(tmp_path, teacher_cache):
    storage = str(tmp_path / "studies")
    for name, cohort in (("alone", 1), ("cohort", 4)):
        run_study(StudySpec(protocol="layers", base=base(teacher_cache), storage=storage, name=name, cells=CELLS,
                            verbose=0, cohort=cohort))
    alone, together = rows_by_cell(storage, "alone"), rows_by_cell(storage, "cohort")
    assert len(together) == len(CELLS) and set(together) == set(alone)
    for cell, rows in together.items():
        assert comparable(rows) == comparable(alone[cell]), cell
        # one Tune trial trained them all; each cell is a trial of the rows
        assert len({r["cohort"] for r in rows}) == 1 and rows[0]["trial_id"].startswith(rows[0]["cohort"] + "-")
    assert len({rows[0]["cohort"] for rows in together.values()}) == 1
    diverged = together[("none", "backbone,encoder,decoder", 1e12)]
    assert diverged[-1]["status"] == "failed" and "loss is" in diverged[-1]["error"]
    assert all(rows[-1]["status"] == "completed" for cell, rows in together.items() if cell[2] != 1e12)
    # the study's Optuna study has a trial per cell, told as its own trial would be
    study = optuna.load_study(study_name="cohort", storage=JournalStorage(
        JournalFileBackend(str(Path(storage) / "cohort" / "optuna.journal"))))
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]


def test_a_killed_cohort_continues_from_its_last_checkpoint(tmp_path, teacher_cache):
    storage = str(tmp_path / "studies")
    epochs = 5
    spec = StudySpec(protocol="layers", base=base(teacher_cache, epochs=epochs, train_size=48), storage=storage,
                     name="kill", cells=CELLS[:2], verbose=0, cohort=2)
    killed = {}

    def kill_after_an_epoch():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for rows in rows_by_cell(storage, "kill").values() if (Path(storage) / "kill").exists() else []:
                # from epoch 2 on: a kill just after epoch 1's row was written once found no
                # checkpoint registered yet, and the retry rightly started again from epoch 1
                if rows and 2 <= rows[-1]["epoch"] < epochs - 1:
                    killed["pid"] = rows[-1]["pid"]
                    os.kill(rows[-1]["pid"], signal.SIGKILL)
                    return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_after_an_epoch)
    watcher.start()
    run_study(spec)
    watcher.join()
    assert killed, "the cohort finished before it could be killed"
    for rows in rows_by_cell(storage, "kill").values():
        assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))
        assert rows[0]["pid"] == killed["pid"] and rows[-1]["pid"] != killed["pid"]
        resumed = [r["epoch"] for r in rows if r["pid"] != killed["pid"]]
        assert resumed[0] > 1 and rows[-1]["status"] == "completed"


def test_cells_are_packed_by_what_they_share():
    cells = [{"distill": None}, {"distill": "attnfd"}, {"distill": "kd"}, {"distill": "kd", "epochs": 3},
             {"distill": "kd", "teacher_backbone": "resnet34"}]
    cohorts = pack({**TINY}, cells, [0], 4)
    # the plain student joins the first teacher's cohort; other epochs or another teacher stand apart
    assert cohorts == [cells[:3], [cells[3]], [cells[4]]]
    assert chunks(list(range(8)), 3) == [[0, 1, 2], [3, 4, 5], [6, 7]] or \
        [len(c) for c in chunks(list(range(8)), 3)] == [3, 2, 3]
    assert [len(c) for c in chunks(list(range(8)), 4)] == [4, 4]
    assert parse_cohort("auto") == "auto" and parse_cohort("3") == 3
    with pytest.raises(ValueError, match="--cohort must be auto or a number"):
        parse_cohort("0")


def test_auto_packs_the_fastest_cohorts_that_fit(teacher_cache, capsys):
    from attnfd.study import cohorts
    from attnfd.study.protocols import protocol_cells

    cells = protocol_cells("layers", ["resnet18"])
    spec = StudySpec(protocol="layers", base=base(teacher_cache), storage="unused", name="auto", cells=cells,
                     cpus_per_trial=1)
    # two trial slots on the module's 2-CPU instance, one seed: 8 cells in two cohorts of 4
    assert cohorts.auto_size(spec, cells) == 4
    line = capsys.readouterr().out
    assert "one step of a student holds up to" in line and "2 trial slots" in line and "-> 4 cells per cohort" in line
    probe = cohorts.probe_step([{**base(teacher_cache), **c} for c in cells[:2]])
    assert 0 < probe.student_bytes[0] < probe.student_bytes[1] and probe.teacher_bytes > 0  # AttnFD holds more
    assert all(t > 0 for t in probe.student_seconds) and probe.teacher_seconds > 0 and probe.steps > 0

    def fake(fits):
        # AttnFD's own step 1 s, the plain one 0.6 s, the teacher's forward 0.45 s, 100 steps
        def measure(spec, values):
            plain = [not TrainConfig.from_dict(v).distilling for v in values]
            seconds = [0.6 if p else 1.0 for p in plain]
            return cohorts.StepProbe([100] * len(values), 50, int(((fits + 0.5) * 100 + 50) / 0.8 * 2), seconds, 0.0, 0.45, 100)
        return measure

    three_seeds = StudySpec(protocol="layers", base=base(teacher_cache), storage="unused", name="auto", cells=cells,
                            cpus_per_trial=1, seeds=[0, 1, 2])
    # Table 3 over three seeds: two cohorts of 4 per seed (six trials on two slots) beat one
    # cohort of 8 per seed (three trials: the second round leaves a slot idle)
    assert cohorts.auto_size(three_seeds, cells, measure=fake(8)) == 4
    # where only 3 students' steps fit, no more than 3 are packed
    assert cohorts.auto_size(three_seeds, cells, measure=fake(3)) == 3
    # the paper's setting and the student alone over three seeds: six trials alone keep both
    # slots busy, where three cohorts of 2 would run a second round on one slot
    pair = [{"distill": None}, {"distill": "attnfd"}]
    confirm = StudySpec(protocol="layers", base=base(teacher_cache), storage="unused", name="auto", cells=pair,
                        cpus_per_trial=1, seeds=[1, 2, 3])
    assert cohorts.auto_size(confirm, pair, measure=fake(8)) == 1
    assert cohorts.makespan([3, 3, 2, 2, 2], 2) == 7 and cohorts.makespan([5, 1, 1], 3) == 5


def test_a_study_of_two_data_sets_is_refused(teacher_cache, tmp_path):
    from attnfd.config import ConfigError
    from attnfd.study.runner import validate

    spec = StudySpec(protocol="layers", base=base(teacher_cache), storage=str(tmp_path), name="mixed",
                     cells=[{}, {"dataset": "voc", "data_root": str(tmp_path)}])
    with pytest.raises(ConfigError, match="share one data set; these cells use shapes, voc"):
        validate(spec)
