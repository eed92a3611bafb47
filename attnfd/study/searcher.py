"""Ray's OptunaSearch, telling Optuna what really happened to each trial.

Stock OptunaSearch tells an ASHA-stopped trial COMPLETE with its value at the stop rung, so
TPE would model 1-epoch scores as final ones; and it leaves a trial RUNNING forever when the
final value is NaN. Here a trial that did not reach its last epoch is PRUNED (Optuna keeps
its last intermediate value), and one whose loss diverged or that errored is FAIL.
"""

from __future__ import annotations

import logging

from optuna.trial import TrialState
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from attnfd.study.trainable import FAILED

logger = logging.getLogger(__name__)


# the config of a search's reference trial: the same student and budget, trained alone
REFERENCE = {"distill": None}


def is_reference(config: dict) -> bool:
    return config.get("distill", "attnfd") is None


class StudySearch(OptunaSearch):
    """``reference``: a config the search runs once, first, outside Optuna (the student
    trained alone on the same budget, so the study shows what distilling gained)."""

    def __init__(self, *args, reference: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._reference = dict(reference) if reference is not None else None
        self._reference_trials: set[str] = set()

    def suggest(self, trial_id: str) -> dict | None:
        if self._reference is not None and not self._reference_trials:
            self._reference_trials.add(trial_id)
            return dict(self._reference)
        return super().suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._reference_trials:
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._reference_trials:
            return
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        result = result or {}
        value = result.get(self.metric)
        if error or result.get("status") == FAILED:
            state, value = TrialState.FAIL, None
        elif not result.get("final"):
            # stopped early by the scheduler (or removed before it ran)
            state, value = TrialState.PRUNED, None
        else:
            state = TrialState.COMPLETE
        try:
            self._ot_study.tell(self._ot_trials[trial_id], value, state=state)
        except ValueError as err:  # a value Optuna refuses still ends the trial, as failed
            logger.warning("trial %s: %s; told Optuna FAIL", trial_id, err)
            self._ot_study.tell(self._ot_trials[trial_id], None, state=TrialState.FAIL)
        self._completed_trials.add(trial_id)

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
