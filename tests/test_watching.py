"""Watching a study: its persistent Optuna study (a grid's trials, as optuna-dashboard serves
them; a restored search that ends the trials it lost; a journal on an object store) and its
trackers (TensorBoard, MLflow's file store), each read back with its own reader and checked
against the study's Parquet rows. One small grid study feeds them all. (A search's Optuna
study is checked in test_study's search test.)"""

from __future__ import annotations

import json
import math
import threading
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna
import pyarrow.parquet as pq
import pytest
from conftest import TINY
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from attnfd.config import ConfigError
from attnfd.study.optuna_study import JOURNAL_FILE, SEED, STATUS, TUNE_TRIAL_ID
from attnfd.study.runner import StudySpec, run_study
from attnfd.study.searcher import LOST, REFERENCE, StudySearch
from attnfd.study.space import SearchSpace
from attnfd.study.trainable import OBJECTIVE

pytestmark = pytest.mark.usefixtures("local_ray")

CELLS = [{"backbone": "resnet18", "distill": None}, {"backbone": "resnet18", "distill": "attnfd", "alpha": 3.0}]


def spec(storage: str, cache: str, **changes) -> StudySpec:
    # evaluated every second epoch: epoch 1's mIoU is NaN, which a tracker must not receive as a
    # value, and Optuna's intermediate value is the objective (0 before the first evaluation)
    base = {**TINY, "cache_dir": cache, "eval_every": 2}
    return StudySpec(protocol="layers", base=base, storage=storage, name="grid", cells=CELLS, verbose=-1, **changes)


@pytest.fixture(scope="module")
def grid(module_tmp, teacher_cache) -> Path:
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    run_study(spec(str(module_tmp / "studies"), teacher_cache, seeds=[0, 1], trackers=("tensorboard", "mlflow")))
    return module_tmp / "studies" / "grid"


def rows(study: Path) -> dict[str, list[dict]]:
    return {p.stem: sorted(pq.read_table(p).to_pylist(), key=lambda r: r["epoch"])
            for p in (study / "results" / "epochs").glob("*.parquet")}


def objectives(epochs: list[dict]) -> dict[int, float]:
    """The last evaluated val mIoU at each epoch, 0 before the first evaluation."""
    seen, out = 0.0, {}
    for r in epochs:
        seen = r["miou"] if math.isfinite(r["miou"]) else seen
        out[r["epoch"]] = seen
    return out


def journal(folder: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(folder / JOURNAL_FILE)))


def test_a_grid_study_is_an_optuna_study_with_its_cells_as_parameters(grid):
    study = optuna.load_study(study_name="grid", storage=journal(grid))
    trials = study.get_trials()
    epochs_by_trial = rows(grid)
    assert len(trials) == len(epochs_by_trial) == 4
    by_tune_id = {t.user_attrs[TUNE_TRIAL_ID]: t for t in trials}
    assert set(by_tune_id) == set(epochs_by_trial)
    for tune_id, epochs in epochs_by_trial.items():
        trial, last = by_tune_id[tune_id], epochs[-1]
        assert trial.state == TrialState.COMPLETE and trial.user_attrs[STATUS] == "completed"
        assert trial.user_attrs[SEED] == last["config/seed"]
        # the varied fields are the parameters; the backbone, the same in every cell, is not
        cell = next(c for c in CELLS if (c["distill"] or "none") == last["config/distill"])
        assert trial.params == {"distill": cell["distill"], "alpha": cell.get("alpha")}
        assert trial.value == pytest.approx(last["miou"])
        assert trial.intermediate_values == pytest.approx(objectives(epochs))


def _serve(app):
    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_optuna_dashboard_lists_the_study_with_its_trials_and_values(grid):
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    server = _serve(optuna_dashboard.wsgi(journal(grid)))
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        studies = json.load(urllib.request.urlopen(f"{base}/api/studies", timeout=30))["study_summaries"]
        assert [s["study_name"] for s in studies] == ["grid"]
        detail = json.load(urllib.request.urlopen(f"{base}/api/studies/{studies[0]['study_id']}", timeout=30))
        importances = json.load(urllib.request.urlopen(f"{base}/api/studies/{studies[0]['study_id']}/param_importances",
                                                       timeout=60))
    finally:
        server.shutdown()
        server.server_close()
    trials = rows(grid)
    shown = {next(a["value"] for a in t["user_attrs"] if a["key"] == TUNE_TRIAL_ID): t for t in detail["trials"]}
    assert set(shown) == set(trials)
    for tune_id, epochs in trials.items():
        assert shown[tune_id]["state"] == "Complete"
        assert shown[tune_id]["values"] == [pytest.approx(epochs[-1]["miou"])]
        assert len(shown[tune_id]["intermediate_values"]) == len(epochs)
    # the grid's varied fields are parameters its importance plot can rank
    assert {i["name"] for i in importances["param_importances"][0]} == {"distill", "alpha"}


def test_tensorboard_holds_every_trials_metrics_per_epoch_without_the_nan_ones(grid):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for trial_id, epochs in rows(grid).items():
        events = EventAccumulator(str(grid / f"trial_{trial_id}"))
        events.Reload()
        loss = [(e.step, e.value) for e in events.Scalars("ray/tune/loss")]
        assert loss == [(r["epoch"], pytest.approx(r["loss"])) for r in epochs]
        miou = [(e.step, e.value) for e in events.Scalars("ray/tune/miou")]
        assert miou == [(r["epoch"], pytest.approx(r["miou"])) for r in epochs if math.isfinite(r["miou"])]
        assert [step for step, _ in miou] == [2]


def test_mlflow_has_a_run_per_trial_with_its_metric_history(grid):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"file://{grid / 'mlruns'}")
    experiment = client.get_experiment_by_name("grid")
    runs = client.search_runs([experiment.experiment_id])
    by_trial = {r.data.params["trial_id"] if "trial_id" in r.data.params else r.data.tags["trial_name"]: r for r in runs}
    trials = rows(grid)
    assert len(runs) == len(trials)
    for trial_id, epochs in trials.items():
        run = next(r for name, r in by_trial.items() if trial_id in name)
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [(m.step, m.value) for m in history] == [(r["epoch"], pytest.approx(r["loss"])) for r in epochs]
        assert run.data.metrics["miou"] == pytest.approx(epochs[-1]["miou"])
        assert run.data.params["seed"] == str(epochs[-1]["config/seed"])


def test_a_tracker_whose_package_is_missing_is_one_line_before_the_study_starts(tmp_path, teacher_cache, monkeypatch):
    import importlib.util

    from attnfd.study import trackers

    real = importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None if name == "mlflow" else real(name))
    with pytest.raises(ConfigError, match=r"--tracker mlflow needs the mlflow package: pip install 'attnfd\[mlflow\]'"):
        run_study(spec(str(tmp_path), teacher_cache, trackers=("mlflow",)))
    assert not (tmp_path / "grid").exists()


def test_an_existing_optuna_study_of_the_name_in_a_database_is_not_continued_by_a_new_study(tmp_path, teacher_cache):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    optuna.create_study(study_name="taken", storage=url)
    taken = StudySpec(protocol="layers", base={**TINY, "cache_dir": teacher_cache}, storage=str(tmp_path / "studies"),
                      name="taken", cells=CELLS[:1], optuna_storage=url, verbose=-1)
    with pytest.raises(ConfigError, match="already holds a study 'taken'"):
        run_study(taken)


def test_a_restored_search_fails_the_optuna_trials_its_snapshot_did_not_know(tmp_path):
    def searcher():
        space = SearchSpace(alpha_range=(0.5, 5.0))
        return StudySearch(space, metric=OBJECTIVE, mode="max", reference=REFERENCE,
                           storage=JournalStorage(JournalFileBackend(str(tmp_path / JOURNAL_FILE))), study_name="s")

    search = searcher()
    search.suggest("ref")
    search.suggest("a")
    search.on_trial_complete("a", {OBJECTIVE: 0.4, "final": True, "status": "completed"})
    search.suggest("b")
    search.save(str(tmp_path / "searcher.pkl"))  # the experiment's last snapshot
    search.suggest("c")  # asked for after it; then the driver was killed

    restored = searcher()
    restored.restore(str(tmp_path / "searcher.pkl"))
    states = {t.user_attrs[TUNE_TRIAL_ID]: (t.state, t.user_attrs[STATUS]) for t in restored._ot_study.get_trials()}
    assert states == {"a": (TrialState.COMPLETE, "completed"), "b": (TrialState.RUNNING, "running"),
                      "c": (TrialState.FAIL, LOST)}
    assert not math.isnan(restored._ot_study.best_value)


def test_an_object_store_studys_journal_is_copied_there_and_a_new_driver_continues_it(s3, tmp_path, monkeypatch):
    from conftest import s3_bucket

    from attnfd.study import results as res
    from attnfd.study.optuna_study import LOCAL_DIR_ENV, JournalCopy, journal_path, open_storage

    s3_bucket(s3, "journals")
    remote = StudySpec(protocol="layers", base={}, storage=f"s3://journals/studies?{s3}", name="remote", cells=CELLS)
    monkeypatch.setenv(LOCAL_DIR_ENV, str(tmp_path / "first-driver"))
    study = optuna.create_study(study_name="remote", storage=open_storage(remote), direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    assert journal_path(remote).is_relative_to(tmp_path / "first-driver")
    JournalCopy(remote).on_experiment_end([])

    fs, folder = res.storage_fs(remote.storage)
    assert fs.get_file_info(f"{folder}/remote/{JOURNAL_FILE}").size == journal_path(remote).stat().st_size
    monkeypatch.setenv(LOCAL_DIR_ENV, str(tmp_path / "second-driver"))  # a requeued job on another node
    continued = optuna.load_study(study_name="remote", storage=open_storage(remote))
    assert [t.value for t in continued.get_trials()] == [0.5]
