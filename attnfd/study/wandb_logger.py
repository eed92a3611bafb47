"""Ray's WandbLoggerCallback, with logging actors that end so that W&B keeps every run.

Ray logs each trial from an actor and kills it (``ray.kill``) once ``wandb.finish()``
returns. W&B's writer is its own process, and it still held the last trial's records then:
in offline mode that trial's run file stayed at its 7-byte header (wandb 0.31, ray 2.60: in
each of three studies of two trials, the trial that ended last; calling ``wandb.teardown()``
in the actor first did not help, 2 studies of 3 lost it). An actor that exits by itself
(``__ray_terminate__``) lets W&B's writer finish; then every run was complete. Ray builds the
actor with unlimited task retries, and would report that exit as a failed task to retry, so
the actor is built here without retries (a logging actor that dies loses the rest of its
trial's W&B records, not the trial).

And a study stopped part way (Ctrl-C, a SLURM signal) ends without ending its running
trials, so Ray's callback waited its whole upload timeout (30 minutes) for actors that were
never told to finish; here they are told, and given ``END_TIMEOUT_S``.
"""

from __future__ import annotations

import os

import ray
from ray.air.integrations.wandb import WandbLoggerCallback
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

END_TIMEOUT_S = 120
API_KEY_ENV = "WANDB_API_KEY"


class StudyWandbLogger(WandbLoggerCallback):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("upload_timeout", END_TIMEOUT_S)
        super().__init__(*args, **kwargs)

    def setup(self, *args, **kwargs) -> None:
        super().setup(*args, **kwargs)
        env = {API_KEY_ENV: os.environ[API_KEY_ENV]} if API_KEY_ENV in os.environ else {}
        # on the driver's node, as Ray's own: the queue and the actor talk on every report
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self._remote_logger_class = ray.remote(num_cpus=0, scheduling_strategy=here, runtime_env={"env_vars": env},
                                               max_restarts=0, max_task_retries=0)(self._logger_actor_cls)

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
