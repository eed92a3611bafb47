"""Ray's OptunaSearch, telling Optuna what really happened to each trial.

Stock OptunaSearch tells an ASHA-stopped trial COMPLETE with its value at the stop rung, so
TPE would model 1-epoch scores as final ones; and it leaves a trial RUNNING forever when the
final value is NaN. Here a trial that did not reach its last epoch is PRUNED (Optuna keeps
its last intermediate value), and one whose loss diverged or that errored is FAIL
(``attnfd.study.optuna_study.final_state``, which a grid study's recorder shares).
"""

from __future__ import annotations

import logging
import math

from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from attnfd.study.optuna_study import SEED, STATUS, TUNE_TRIAL_ID, end_status, final_state, mark
from attnfd.study_contract import RUNNING

logger = logging.getLogger(__name__)


# the config of a search's reference trial: the same student and budget, trained alone
REFERENCE = {"distill": None}
REFERENCE_ATTR = "reference"
# the status of an Optuna trial whose Tune trial the restored study no longer knows
LOST = "lost"


def is_reference(config: dict) -> bool:
    return config.get("distill", "attnfd") is None


class StudySearch(OptunaSearch):
    """``reference``: a config the search runs once, first, outside Optuna (the student
    trained alone on the same budget, so the study shows what distilling gained); its val
    mIoU is kept as the Optuna study's ``reference`` user attribute. Each Optuna trial
    carries its Tune trial id, seed (``trial_seed``: every trial of a search has the same)
    and status (``attnfd.study.optuna_study``)."""

    def __init__(self, *args, reference: dict | None = None, trial_seed: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._trial_seed = trial_seed
        self._reference = dict(reference) if reference is not None else None
        self._reference_trials: set[str] = set()

    def suggest(self, trial_id: str) -> dict | None:
        if self._reference is not None and not self._reference_trials:
            self._reference_trials.add(trial_id)
            return dict(self._reference)
        config = super().suggest(trial_id)
        if trial_id in self._ot_trials:
            mark(self._ot_study._storage, self._ot_trials[trial_id]._trial_id,
                 **{TUNE_TRIAL_ID: trial_id, SEED: self._trial_seed, STATUS: RUNNING})
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._reference_trials:
            return
        super().on_trial_result(trial_id, result)
        if trial_id in self._ot_trials and trial_id not in self._completed_trials:
            mark(self._ot_study._storage, self._ot_trials[trial_id]._trial_id, **{STATUS: result.get("status")})

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._reference_trials:
            if result and result.get("final"):
                self._ot_study.set_user_attr(REFERENCE_ATTR, {TUNE_TRIAL_ID: trial_id, "miou": result.get(self.metric)})
            return
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        state, value = final_state(result or {}, error)
        ot_trial = self._ot_trials[trial_id]
        self._report_last(ot_trial, result or {})
        # a finished Optuna trial takes no more attributes
        mark(self._ot_study._storage, ot_trial._trial_id, **{STATUS: end_status(state)})
        self._ot_study.tell(ot_trial, value, state=state)
        self._completed_trials.add(trial_id)

    def _report_last(self, ot_trial, result: dict) -> None:
        """The result a trial ends with reaches the searcher only here when the scheduler
        stopped the trial on it (ASHA at a rung, or at max_t): Optuna gets its epoch too."""
        step, value = result.get(TRAINING_ITERATION), result.get(self.metric)
        if step is None or not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        if step not in self._ot_study._storage.get_trial(ot_trial._trial_id).intermediate_values:
            ot_trial.report(value, step)

    def restore(self, checkpoint_path: str) -> None:
        """Also ends, as FAIL, the Optuna trials the restored searcher does not know: a driver
        killed between two snapshots of the experiment leaves trials it had asked for RUNNING
        in a persistent study, and Tune asks for their configs again under new ids."""
        super().restore(checkpoint_path)
        known = {t._trial_id for t in self._ot_trials.values()}
        for lost in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if lost._trial_id not in known:
                mark(self._ot_study._storage, lost._trial_id, **{STATUS: LOST})
                self._ot_study.tell(lost.number, None, state=TrialState.FAIL)

    def trial_states(self) -> dict[str, str]:
        """Optuna's state of each Tune trial, by Tune trial id."""
        trials = {t._trial_id: t.state.name for t in self._ot_study.get_trials(deepcopy=False)}
        return {tid: trials[t._trial_id] for tid, t in self._ot_trials.items()}


class StudyASHA(ASHAScheduler):
    """ASHA that leaves the reference trial alone: it is there to be compared with, and
    stopping it early (it is expected to be worse) would leave nothing to compare."""

    def on_trial_add(self, tune_controller, trial) -> None:
        if not is_reference(trial.config):
            super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if is_reference(trial.config):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if not is_reference(trial.config):
            super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        if not is_reference(trial.config):
            super().on_trial_remove(tune_controller, trial)
