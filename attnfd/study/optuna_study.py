"""Every study's trials in a persistent Optuna study, so optuna-dashboard (and Optuna's own
importance and slice plots) show a search and a grid study alike, while they run and after.

Where it is kept:
- by default a journal file, ``<study folder>/optuna.journal``. A journal cannot live on an
  object store, so for an ``s3://`` or ``gs://`` storage it is written on the driver's disk
  (``$ATTNFD_OPTUNA_DIR``, default ``~/.cache/attnfd/optuna``) and copied into the study
  folder as the study goes and when it ends; a resumed study on a fresh driver starts from
  that copy;
- ``--optuna-storage URL``: a lab's own database (PostgreSQL, MySQL, SQLite) by SQLAlchemy URL;
- ``--optuna-storage none``: no persistent study (a search keeps Optuna's in memory).

The Optuna study's name is the study's label (``<name>``, a confirm stage's ``<name>/confirm``). Each Optuna
trial carries the Tune trial id, the seed and the status as user attributes, and the val
mIoU Tune compares (``objective``) at every epoch as its intermediate values. A search's
Optuna study is its searcher's own (``attnfd.study.searcher``); a grid's trials are recorded
by ``GridRecorder`` with the cell's fields as fixed categorical parameters.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path

import optuna
import pyarrow.fs
from optuna.distributions import CategoricalDistribution
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune import Callback

from attnfd.errors import ConfigError
from attnfd.study import results as res
from attnfd.study.trainable import CELL, OBJECTIVE, units
from attnfd.study_contract import COMPLETED, FAILED, RUNNING, STOPPED
from attnfd.study_contract import OPTUNA_JOURNAL as JOURNAL_FILE

NO_STORAGE = "none"
LOCAL_DIR_ENV = "ATTNFD_OPTUNA_DIR"
# user attributes of every recorded trial
TUNE_TRIAL_ID, SEED, STATUS = "tune_trial_id", "seed", "status"


def journal_path(spec) -> Path:
    """The journal the driver writes: in the study folder, or for an object store on local disk."""
    if not res.on_object_store(spec.storage):
        _, folder = res.storage_fs(spec.storage)
        return Path(folder) / spec.name / JOURNAL_FILE
    local = Path(os.environ.get(LOCAL_DIR_ENV, "~/.cache/attnfd/optuna")).expanduser()
    key = hashlib.sha1(spec.storage.rstrip("/").encode()).hexdigest()[:12]
    return local / key / spec.name / JOURNAL_FILE


def journal_is_copied(spec) -> bool:
    return not spec.optuna_storage and res.on_object_store(spec.storage)


def check_new(spec) -> None:
    """A new study must not continue an old Optuna study of its name in a lab's database."""
    if spec.optuna_storage and spec.optuna_storage != NO_STORAGE:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            names = optuna.study.get_all_study_names(RDBStorage(spec.optuna_storage))
        except (SQLAlchemyError, ImportError, ValueError) as err:  # a bad URL, a server down, a missing driver
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise ConfigError(f"--optuna-storage {spec.optuna_storage}: {type(err).__name__}: {first}") from None
        if spec.name in names:
            raise ConfigError(f"the Optuna storage already holds a study {spec.name!r}; pass --resume to continue it, "
                              "or another --name")


def _journal_copy(spec) -> str:
    return f"{spec.name}/{JOURNAL_FILE}"


def open_storage(spec) -> BaseStorage | None:
    """The study's Optuna storage (``None`` with ``--optuna-storage none``)."""
    if spec.optuna_storage == NO_STORAGE:
        return None
    if spec.optuna_storage:
        return RDBStorage(spec.optuna_storage)
    path = journal_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    if journal_is_copied(spec) and not path.exists():
        # a resumed study on another driver: continue the copy the study folder holds
        fs, folder = res.storage_fs(spec.storage)
        copy = f"{folder}/{_journal_copy(spec)}"
        if fs.get_file_info(copy).type != pyarrow.fs.FileType.NotFound:
            with fs.open_input_stream(copy) as source:
                path.write_bytes(source.read())
    return JournalStorage(JournalFileBackend(str(path)))


class JournalCopy(Callback):
    """Copies a driver-local journal into the study folder on an object store: at most every
    ``every`` seconds as trials report, and when the phase ends."""

    def __init__(self, spec, every: float = 30.0):
        self.storage, self.copy, self.path, self.every = spec.storage, _journal_copy(spec), str(journal_path(spec)), every
        self._last = 0.0

    def __getstate__(self) -> dict:
        # a monotonic clock's value means nothing in the process that restores the study
        return {**self.__dict__, "_last": 0.0}

    def _upload(self) -> None:
        fs, folder = res.storage_fs(self.storage)
        with fs.open_output_stream(f"{folder}/{self.copy}") as out:
            out.write(Path(self.path).read_bytes())
        self._last = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if time.monotonic() - self._last >= self.every:
            self._upload()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._upload()

    def on_experiment_end(self, trials, **info) -> None:
        self._upload()


def mark(storage: BaseStorage, trial_id: int, **attrs) -> None:
    """Set the user attributes that changed (each write is a journal record); ``trial_id`` is
    the storage's id of the trial."""
    current = storage.get_trial_user_attrs(trial_id)
    for key, value in attrs.items():
        if value is not None and current.get(key) != value:
            storage.set_trial_user_attr(trial_id, key, value)


def final_state(result: dict, errored: bool) -> tuple[TrialState, float | None]:
    """What Optuna is told when a trial ends: FAIL for a diverged or errored trial, PRUNED for
    one stopped before its last epoch (Optuna keeps its last intermediate value), else
    COMPLETE with the objective; FAIL too for an objective Optuna refuses (NaN, inf), which
    would leave the trial RUNNING."""
    if errored or result.get("status") == FAILED:
        return TrialState.FAIL, None
    if not result.get("final"):
        return TrialState.PRUNED, None
    value = result.get(OBJECTIVE)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return TrialState.FAIL, None
    return TrialState.COMPLETE, float(value)


def end_status(state: TrialState) -> str:
    return {TrialState.FAIL: FAILED, TrialState.COMPLETE: COMPLETED}.get(state, STOPPED)


def _choice(value):
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


class GridRecorder(Callback):
    """A grid phase's trials as Optuna trials: each cell's varied fields are its parameters
    (categorical, over the values the grid runs), so a grid study is one more study in the
    dashboard, with importances over the fields it varied."""

    def __init__(self, storage: BaseStorage, name: str, cells: list[dict]):
        self.storage, self.name = storage, name
        fields = sorted({k for cell in cells for k in cell})
        values = {k: list(dict.fromkeys(_choice(cell.get(k)) for cell in cells)) for k in fields}
        self.distributions = {k: CategoricalDistribution(v) for k, v in values.items() if len(v) > 1}
        self._study: optuna.Study | None = None
        self._trials: dict[str, int] = {}  # Tune trial id -> Optuna trial id

    def __getstate__(self) -> dict:
        # the storage is the state; a restored study finds its trials there by Tune trial id
        return {**self.__dict__, "_study": None, "_trials": {}}

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = optuna.create_study(storage=self.storage, study_name=self.name, direction="maximize",
                                              load_if_exists=True)
            self._trials = {t.user_attrs[TUNE_TRIAL_ID]: t._trial_id for t in self._study.get_trials(deepcopy=False)
                            if TUNE_TRIAL_ID in t.user_attrs}
        return self._study

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        study = self.study
        for unit_id, config, _ in units(trial.trial_id, trial.config):
            if unit_id in self._trials:
                continue  # a resumed trial keeps its Optuna trial
            cell = config.get(CELL, {})
            study.enqueue_trial({k: _choice(cell.get(k)) for k in self.distributions}, skip_if_exists=False)
            ot_trial = study.ask(fixed_distributions=self.distributions)
            self._trials[unit_id] = ot_trial._trial_id
            mark(self.storage, ot_trial._trial_id, **{TUNE_TRIAL_ID: unit_id, SEED: config.get("seed"),
                                                      STATUS: RUNNING})

    def _running(self, unit_id: str) -> int | None:
        number = self._trials.get(unit_id)
        if number is None or self.storage.get_trial(number).state != TrialState.RUNNING:
            return None
        return number

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        for unit_id, _, part in units(trial.trial_id, trial.config, result):
            number = self._running(unit_id)
            if number is None or part is None:
                continue
            self.storage.set_trial_intermediate_value(number, int(part["training_iteration"]), float(part[OBJECTIVE]))
            mark(self.storage, number, **{STATUS: part.get("status")})
            if part.get("status") == FAILED:  # a cohort's cell that diverged: the others go on
                self._tell(number, part, errored=False)

    def _tell(self, number: int, result: dict, errored: bool) -> None:
        state, value = final_state(result, errored)
        mark(self.storage, number, **{STATUS: end_status(state)})
        self.study.tell(self.storage.get_trial(number).number, value, state=state)

    def _end(self, trial, errored: bool) -> None:
        last = {}
        for unit_id, _, part in units(trial.trial_id, trial.config, trial.last_result or {}):
            last[unit_id] = part or {}
        for unit_id, result in last.items():
            number = self._running(unit_id)
            if number is not None:
                self._tell(number, result, errored)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._end(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._end(trial, errored=True)
