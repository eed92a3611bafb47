"""Ray's OptunaSearch, telling Optuna what really happened to each trial.

Stock OptunaSearch tells an ASHA-stopped trial COMPLETE with its value at the stop rung, so
TPE would model 1-epoch scores as final ones; and it leaves a trial RUNNING forever when the
final value is NaN. Here a trial that did not reach its last epoch is PRUNED (Optuna keeps
its last intermediate value), and one whose loss diverged or that errored is FAIL.
"""

from __future__ import annotations

import logging

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from attnfd.study.trainable import FAILED

logger = logging.getLogger(__name__)


class StudySearch(OptunaSearch):
    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
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
