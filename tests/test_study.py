"""Studies on a local Ray instance: search, grid protocols, NaN trials and killed trials.

One Ray instance serves the module (on 127.0.0.2: Ray rewrites 127.0.0.1 to the machine's
outward address). Every study uses the tiny config of conftest.py, so a trial takes a second.
"""

import json
import math
import os
import re
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
from optuna.trial import TrialState

from attnfd.study import results as res
from attnfd.study.protocols import protocol_cells
from attnfd.study.runner import StudySpec, run_study
from attnfd.study.searcher import StudySearch
from attnfd.study.space import LAYER_SUBSETS, PAPER_LAYERS, SearchSpace
from attnfd.study.trainable import OBJECTIVE

ray = pytest.importorskip("ray")


pytestmark = pytest.mark.usefixtures("local_ray")


def base(teacher_cache, **changes):
    return {**TINY, "cache_dir": teacher_cache, "role": "student", **changes}


def epoch_rows(storage, name):
    folder = Path(storage) / name / "results" / "epochs"
    return {p.stem: pq.read_table(p).to_pylist() for p in sorted(folder.glob("*.parquet"))}


def reported(storage, name, trial_id):
    """What the trial reported to Tune, from Ray's own per-trial log."""
    lines = (Path(storage) / name / f"trial_{trial_id}" / "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def same(a, b):
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def test_search_writes_a_row_per_reported_epoch(tmp_path, teacher_cache, capfd, recwarn):
    storage = str(tmp_path / "studies")
    spec = StudySpec(protocol="search", base=base(teacher_cache, distill="attnfd"), storage=storage, name="s",
                     space=SearchSpace(), searched=SearchSpace().dimensions, num_samples=3, verbose=0)
    summary = run_study(spec)
    captured = capfd.readouterr()
    console = captured.out

    trials = epoch_rows(storage, "s")
    # the 3 searched trials and the reference: the same student alone, on the same budget, run to its end
    reference = {t: rows for t, rows in trials.items() if rows[0]["config/distill"] == "none"}
    assert len(trials) == 4 and len(summary) == 4 and len(reference) == 1
    (ref_id, ref_rows), = reference.items()
    assert [r["epoch"] for r in ref_rows] == [1, 2] and ref_rows[-1]["status"] == "completed"
    assert not any(k.startswith("loss_attnfd") and v is not None for r in ref_rows for k, v in r.items())
    # one line per trial event, and none of Ray's status tables
    assert f"trial {ref_id} started: resnet18 alone (no distillation)" in console
    assert f"trial {ref_id} completed: val mIoU" in console
    assert len(re.findall(r"^trial \S+ started: resnet18 \+ attnfd, alpha ", console, re.MULTILINE)) == 3
    assert len(re.findall(r"^trial \S+: epoch 1/2", console, re.MULTILINE)) == 4
    assert "Trial status" not in console and "Current time" not in console
    # neither Tune's start-of-run box nor colour codes on the lines forwarded from workers
    assert "Configuration for experiment" not in console and "\x1b[" not in console
    # nor Optuna's INFO line and its experimental-feature warning
    assert "A new study created" not in captured.err
    assert not [w for w in recwarn if "experimental feature" in str(w.message)]
    trials = {t: rows for t, rows in trials.items() if t != ref_id}
    # its Optuna study, in the study folder: a trial per searched trial, the reference beside them
    recorded = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(f"{storage}/s/optuna.journal")))
    by_tune_id = {t.user_attrs["tune_trial_id"]: t for t in recorded.get_trials()}
    assert set(by_tune_id) == set(trials)
    for trial_id, rows in trials.items():
        kept = by_tune_id[trial_id]
        assert kept.user_attrs["seed"] == 0 and kept.user_attrs["status"] == rows[-1]["status"]
        assert kept.state == (TrialState.COMPLETE if rows[-1]["status"] == "completed" else TrialState.PRUNED)
        # the epoch ASHA stopped a trial on included: it reaches the searcher only with the stop
        assert kept.intermediate_values == pytest.approx({r["epoch"]: r["miou"] for r in rows})
        if kept.state == TrialState.COMPLETE:
            assert kept.value == pytest.approx(rows[-1]["miou"]) and kept.params["alpha"] == rows[-1]["config/alpha"]
    assert recorded.user_attrs["reference"] == {"tune_trial_id": ref_id, "miou": pytest.approx(ref_rows[-1]["miou"])}
    for trial_id, rows in trials.items():
        results = reported(storage, "s", trial_id)
        assert [r["epoch"] for r in rows] == [r["epoch"] for r in results]
        for row, result in zip(rows, results):
            compared = [k for k in result if k.startswith("loss") or k in
                        ("miou", "pixel_acc", "per_class_iou", "alpha", "lr", "seconds", "node_id", "pid")]
            assert "loss_ce" in compared and any(k.startswith("loss_attnfd.") for k in compared)
            for key in compared:
                assert same(row[key], result[key]), key
            assert row["config/alpha"] == result["config"]["alpha"]
        assert rows[-1]["status"] in ("completed", "stopped")
        assert all(r["config/distill"] == "attnfd" and r["config/layers"] in LAYER_SUBSETS for r in rows)
    # the paper's setting is evaluated: alpha 1 on shapes (a value TPE would not draw exactly),
    # all three taps, constant
    settings = [(r[0]["config/alpha"], r[0]["config/layers"], r[0]["config/alpha_schedule"]) for r in trials.values()]
    assert (1.0, PAPER_LAYERS, "constant") in settings
    assert {r["trial_id"] for r in summary} == set(trials) | {ref_id}
    assert pq.read_table(Path(storage) / "s" / "results" / "summary.parquet").num_rows == 4

    from attnfd.analysis.results import load_study

    study = load_study(Path(storage) / "s")
    assert len(study.epochs) == sum(len(rows) for rows in trials.values()) + len(ref_rows)


def test_layers_protocol_runs_every_cell_for_every_seed(tmp_path, teacher_cache):
    storage = str(tmp_path / "studies")
    cells = protocol_cells("layers", ["resnet18"])
    spec = StudySpec(protocol="layers", base=base(teacher_cache, epochs=1), storage=storage, name="t3",
                     cells=cells, seeds=[0, 1], verbose=0)
    summary = run_study(spec)

    assert len(cells) == 1 + 7
    assert len(summary) == (1 + 7) * 1 * 2
    assert all(r["status"] == "completed" and r["epoch"] == 1 for r in summary)
    runs = {(r["config/distill"], r["config/layers"] if r["config/distill"] != "none" else "", r["config/seed"])
            for r in summary}
    assert len(runs) == 16
    assert {layers for distill, layers, _ in runs if distill == "attnfd"} == set(LAYER_SUBSETS)
    assert res.read_study_meta(storage, "t3")["trials"] == 16  # what a watcher counts against


def test_a_diverging_trial_is_failed_with_its_reason_and_the_study_goes_on(tmp_path, teacher_cache):
    storage = str(tmp_path / "studies")
    cells = [{"backbone": "resnet18", "distill": None}, {"backbone": "resnet18", "distill": None, "lr": 1e12}]
    spec = StudySpec(protocol="layers", base=base(teacher_cache), storage=storage, name="nan", cells=cells,
                     verbose=0)
    summary = run_study(spec)

    by_lr = {r["config/lr"]: r for r in summary}
    assert by_lr[TINY["lr"]]["status"] == "completed" and by_lr[TINY["lr"]]["epoch"] == TINY["epochs"]
    failed = by_lr[1e12]
    assert failed["status"] == "failed"
    assert "loss is nan" in failed["error"] or "loss is inf" in failed["error"]
    assert re.search(r"at epoch [12], step \d+", failed["error"]), failed["error"]


def test_a_killed_trial_continues_from_its_last_checkpoint(tmp_path, teacher_cache):
    storage = str(tmp_path / "studies")
    epochs = 6
    spec = StudySpec(protocol="layers", base=base(teacher_cache, epochs=epochs, train_size=48, eval_every=1),
                     storage=storage, name="kill", cells=[{"backbone": "resnet18", "distill": None}], verbose=0)
    killed = {}

    def kill_after_first_epoch():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for rows in epoch_rows(storage, "kill").values() if (Path(storage) / "kill").exists() else []:
                if rows and rows[-1]["epoch"] < epochs:
                    killed["pid"], killed["epoch"] = rows[-1]["pid"], rows[-1]["epoch"]
                    os.kill(rows[-1]["pid"], signal.SIGKILL)
                    return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_after_first_epoch)
    watcher.start()
    summary = run_study(spec)
    watcher.join()

    assert killed, "the trial finished before it could be killed"
    (rows,) = epoch_rows(storage, "kill").values()
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))
    assert summary[0]["status"] == "completed"
    # epochs up to the kill ran in the killed process, the rest in a new one that did not
    # start over (a restart from scratch would have rewritten epoch 1 with the new pid)
    assert rows[0]["pid"] == killed["pid"]
    assert rows[-1]["pid"] != killed["pid"]
    resumed = [r["epoch"] for r in rows if r["pid"] != killed["pid"]]
    assert resumed == list(range(resumed[0], epochs + 1)) and resumed[0] > 1


class FakeTrial:
    def __init__(self):
        self.params = {}

    def suggest_float(self, name, low, high, log=False):
        self.params[name] = (low * high) ** 0.5

    def suggest_categorical(self, name, choices):
        self.params[name] = choices[-1]


def test_the_search_space_and_what_optuna_is_told():
    space = SearchSpace(alpha_range=(0.1, 30), extra=("norm",))
    trial = FakeTrial()
    space(trial)
    assert set(trial.params) == set(space.dimensions) == {"alpha", "layers", "alpha_schedule", "norm"}

    search = StudySearch(space, metric=OBJECTIVE, mode="max", points_to_evaluate=[space.paper_point(1.0)])
    configs = {tid: search.suggest(tid) for tid in ("a", "b", "c", "d", "e")}
    assert configs["a"] == space.paper_point(1.0)
    assert all(0.1 <= c["alpha"] <= 30 and c["layers"] in LAYER_SUBSETS for c in configs.values())

    search.on_trial_complete("a", {OBJECTIVE: 0.5, "final": True, "status": "completed"})
    search.on_trial_complete("b", {OBJECTIVE: 0.2, "final": False, "status": "running"})  # stopped by ASHA
    search.on_trial_complete("c", {OBJECTIVE: 0.0, "final": False, "status": "failed", "error": "loss is nan"})
    search.on_trial_complete("d", {OBJECTIVE: math.nan, "final": True, "status": "completed"})
    search.on_trial_complete("e", None, error=True)
    assert search.trial_states() == {"a": TrialState.COMPLETE.name, "b": TrialState.PRUNED.name,
                                     "c": TrialState.FAIL.name, "d": TrialState.FAIL.name,
                                     "e": TrialState.FAIL.name}


def test_a_trial_installs_the_studys_teacher_into_its_nodes_cache(tmp_path, teacher_cache):
    from attnfd.config import ConfigError, TrainConfig
    from attnfd.study.trainable import install_teacher, teacher_key

    config = TrainConfig.from_dict(base(str(tmp_path / "node-cache"), distill="attnfd"))
    key = teacher_key(config)
    path = install_teacher(config, {key: b"the teacher's bytes"})
    assert Path(path).read_bytes() == b"the teacher's bytes"
    assert Path(path).is_relative_to(tmp_path / "node-cache")
    assert install_teacher(config, {}) == path  # found: nothing is sent twice to a node

    other = TrainConfig.from_dict(base(str(tmp_path / "empty-cache"), distill="attnfd"))
    with pytest.raises(ConfigError, match="no teacher"):
        install_teacher(other, {})
