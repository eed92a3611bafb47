"""Ray's WandbLoggerCallback, ending its logging actors so that W&B keeps every run.

Ray logs each trial from an actor and kills it (``ray.kill``) once ``wandb.finish()``
returns. W&B's writer is its own process, and it still held the last trial's records then:
in offline mode that trial's run file stayed at its 7-byte header (wandb 0.31, ray 2.60:
in each of three studies of two trials, the trial that ended last). An actor that exits by itself (``__ray_terminate__``) runs
W&B's exit hook, which waits for the writer; then every run was complete.

And a study stopped part way (Ctrl-C, a SLURM signal) ends without ending its running
trials, so Ray's callback waited its whole upload timeout (30 minutes) for actors that were
never told to finish; here they are told, and given ``END_TIMEOUT_S``.
"""

from __future__ import annotations

import ray
from ray.air.integrations.wandb import WandbLoggerCallback

END_TIMEOUT_S = 120


class StudyWandbLogger(WandbLoggerCallback):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("upload_timeout", END_TIMEOUT_S)
        super().__init__(*args, **kwargs)

    def _cleanup_logging_actor(self, trial) -> None:
        actor = self._trial_logging_actors.pop(trial)
        del self._trial_queues[trial]
        del self._trial_logging_futures[trial]
        ray.wait([actor.__ray_terminate__.remote()], timeout=END_TIMEOUT_S)

    def on_experiment_end(self, trials, **info) -> None:
        for trial in list(self._trial_logging_actors):
            if trial.status not in ("TERMINATED", "ERROR"):
                self._signal_logging_actor_stop(trial=trial)
        super().on_experiment_end(trials, **info)
