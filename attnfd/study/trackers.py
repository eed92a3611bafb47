"""``--tracker``: a study's trials in an experiment tracker, through Ray Tune's own logger
callbacks. Each tracker needs only its own package (``pip install 'attnfd[<tracker>]'``),
and every one gets each epoch's report: the val mIoU (on evaluated epochs), the loss and its
parts, the learning rate and alpha.

- ``tensorboard``: event files in each trial's folder (``tensorboard --logdir <study>``);
  Ray's TBXLoggerCallback leaves out the NaN mIoU of epochs that are not evaluated.
- ``mlflow``: one run per trial in the experiment ``<name>``; ``--mlflow-uri`` (a server, or
  a database such as ``sqlite:///mlflow.db``), default a file store ``<study>/mlruns`` (for an
  object-store study, ``./mlruns``)
  (MLflow keeps its file store in maintenance mode and asks for an opt-in, given here only
  for that default).

W&B and Aim are not offered; Ray has callbacks for both, but what they keep could not be
trusted here (README, "Watching a study"):
- W&B (wandb 0.31, offline): Ray kills each trial's logging actor once ``wandb.finish()``
  returns, and the run file of the trial that ended last often stayed at its 7-byte header
  (W&B's writer, its own process, had not written it). Letting the actor exit by itself
  instead of being killed, or calling ``wandb.teardown()`` in it, still lost that trial in
  some studies (1 of 2 and 2 of 3 under load).
- Aim (aim 3.29): Aim's own reader (``Repo.get_run``) found no data in a run that Aim itself
  had just written, so what it would hold could not be checked.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass

from attnfd.errors import ConfigError


@dataclass(frozen=True)
class Tracker:
    module: str  # what must be importable
    make: Callable  # (spec) -> a Tune logger callback


def _tensorboard(spec):
    from ray.tune.logger import TBXLoggerCallback

    return TBXLoggerCallback()


def mlflow_uri(spec) -> str:
    if spec.mlflow_uri:
        return spec.mlflow_uri
    from attnfd.study import results as res

    if res.on_object_store(spec.storage):
        return f"file://{os.path.abspath('mlruns')}"
    _, folder = res.storage_fs(spec.storage)
    return f"file://{folder}/{spec.name}/mlruns"


def _mlflow(spec):
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = mlflow_uri(spec)
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=spec.label,
                                tags={"study": spec.name, "protocol": spec.protocol, "phase": spec.stage})


TRACKERS: dict[str, Tracker] = {
    "tensorboard": Tracker("tensorboardX", _tensorboard),
    "mlflow": Tracker("mlflow", _mlflow),
}


def check_trackers(names) -> None:
    """Each named tracker exists and its package is installed (before Ray starts)."""
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"unknown tracker {name!r}; choose from {', '.join(TRACKERS)}")
        if importlib.util.find_spec(TRACKERS[name].module) is None:
            raise ConfigError(f"--tracker {name} needs the {TRACKERS[name].module} package: "
                              f"pip install 'attnfd[{name}]'")


def tracker_callbacks(spec) -> list:
    return [TRACKERS[name].make(spec) for name in spec.trackers]
