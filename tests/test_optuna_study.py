"""A study's persistent Optuna study: a grid's trials and a search's, as optuna-dashboard
serves them, and a restored search that ends the trials it lost."""

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

from attnfd.study.optuna_study import JOURNAL_FILE, SEED, STATUS, TUNE_TRIAL_ID
from attnfd.study.runner import StudySpec, run_study
from attnfd.study.searcher import LOST, REFERENCE, REFERENCE_ATTR, StudySearch
from attnfd.study.space import SearchSpace
from attnfd.study.trainable import OBJECTIVE

pytestmark = pytest.mark.usefixtures("local_ray")

CELLS = [{"backbone": "resnet18", "distill": None}, {"backbone": "resnet18", "distill": "attnfd", "alpha": 3.0}]


def last_rows(folder: Path) -> dict[str, list[dict]]:
    return {p.stem: sorted(pq.read_table(p).to_pylist(), key=lambda r: r["epoch"])
            for p in (folder / "results" / "epochs").glob("*.parquet")}


def journal(folder: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(folder / JOURNAL_FILE)))


@pytest.fixture(scope="module")
def grid(module_tmp, teacher_cache) -> Path:
    storage = str(module_tmp / "studies")
    run_study(StudySpec(protocol="layers", base={**TINY, "cache_dir": teacher_cache}, storage=storage, name="grid",
                        cells=CELLS, seeds=[0, 1], verbose=-1))
    return Path(storage) / "grid"


def test_a_grid_study_is_an_optuna_study_with_its_cells_as_parameters(grid):
    study = optuna.load_study(study_name="grid", storage=journal(grid))
    trials = study.get_trials()
    rows = last_rows(grid)
    assert len(trials) == len(rows) == 4
    by_tune_id = {t.user_attrs[TUNE_TRIAL_ID]: t for t in trials}
    assert set(by_tune_id) == set(rows)
    for tune_id, epochs in rows.items():
        trial, last = by_tune_id[tune_id], epochs[-1]
        assert trial.state == TrialState.COMPLETE and trial.user_attrs[STATUS] == "completed"
        assert trial.user_attrs[SEED] == last["config/seed"]
        # the varied fields are the parameters; the backbone, the same in every cell, is not
        cell = next(c for c in CELLS if (c["distill"] or "none") == last["config/distill"])
        assert trial.params == {"distill": cell["distill"], "alpha": cell.get("alpha")}
        assert trial.value == pytest.approx(last["miou"])
        assert trial.intermediate_values == pytest.approx({r["epoch"]: r["miou"] for r in epochs})


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
    finally:
        server.shutdown()
        server.server_close()
    rows = last_rows(grid)
    shown = {next(a["value"] for a in t["user_attrs"] if a["key"] == TUNE_TRIAL_ID): t for t in detail["trials"]}
    assert set(shown) == set(rows)
    for tune_id, epochs in rows.items():
        assert shown[tune_id]["state"] == "Complete"
        assert shown[tune_id]["values"] == [pytest.approx(epochs[-1]["miou"])]
        assert len(shown[tune_id]["intermediate_values"]) == len(epochs)


def test_a_search_keeps_its_optuna_study_with_the_reference_beside_it(tmp_path, teacher_cache):
    storage = str(tmp_path / "studies")
    space = SearchSpace(alpha_range=(0.5, 5.0))
    rows = run_study(StudySpec(protocol="search", base={**TINY, "cache_dir": teacher_cache, "distill": "attnfd"},
                               storage=storage, name="s", space=space, searched=space.dimensions, num_samples=2,
                               asha=False, verbose=-1))
    study = optuna.load_study(study_name="s", storage=journal(Path(storage) / "s"))
    by_tune_id = {t.user_attrs[TUNE_TRIAL_ID]: t for t in study.get_trials()}
    searched = {r["trial_id"]: r for r in rows if r["config/distill"] != "none"}
    reference = [r for r in rows if r["config/distill"] == "none"]
    assert set(by_tune_id) == set(searched) and len(reference) == 1
    for tune_id, row in searched.items():
        trial = by_tune_id[tune_id]
        assert trial.state == TrialState.COMPLETE and trial.user_attrs[STATUS] == "completed"
        assert trial.value == pytest.approx(row["miou"]) and trial.params["alpha"] == pytest.approx(row["config/alpha"])
        assert trial.user_attrs[SEED] == 0 and sorted(trial.intermediate_values) == [1, 2]
    assert study.user_attrs[REFERENCE_ATTR] == {TUNE_TRIAL_ID: reference[0]["trial_id"],
                                                "miou": pytest.approx(reference[0]["miou"])}


def test_an_existing_optuna_study_of_the_name_in_a_database_is_not_continued_by_a_new_study(tmp_path, teacher_cache):
    from attnfd.config import ConfigError

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    optuna.create_study(study_name="taken", storage=url)
    spec = StudySpec(protocol="layers", base={**TINY, "cache_dir": teacher_cache}, storage=str(tmp_path / "studies"),
                     name="taken", cells=CELLS[:1], optuna_storage=url, verbose=-1)
    with pytest.raises(ConfigError, match="already holds a study 'taken'"):
        run_study(spec)


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
    spec = StudySpec(protocol="layers", base={}, storage=f"s3://journals/studies?{s3}", name="remote", cells=CELLS)
    monkeypatch.setenv(LOCAL_DIR_ENV, str(tmp_path / "first-driver"))
    study = optuna.create_study(study_name="remote", storage=open_storage(spec), direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    assert journal_path(spec).is_relative_to(tmp_path / "first-driver")
    JournalCopy(spec).on_experiment_end([])

    fs, folder = res.storage_fs(spec.storage)
    assert fs.get_file_info(f"{folder}/remote/{JOURNAL_FILE}").size == journal_path(spec).stat().st_size
    monkeypatch.setenv(LOCAL_DIR_ENV, str(tmp_path / "second-driver"))  # a requeued job on another node
    continued = optuna.load_study(study_name="remote", storage=open_storage(spec))
    assert [t.value for t in continued.get_trials()] == [0.5]
