"""``--tracker``: one small study reported to TensorBoard and MLflow (a file store) at once; what each holds is read back with the tracker's own reader and checked
against the study's Parquet rows."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import TINY

from attnfd.config import ConfigError
from attnfd.study.runner import StudySpec, run_study

pytestmark = pytest.mark.usefixtures("local_ray")

CELLS = [{"backbone": "resnet18", "distill": None}, {"backbone": "resnet18", "distill": "attnfd"}]


def spec(storage: str, cache: str, **changes) -> StudySpec:
    # evaluated every second epoch: epoch 1's mIoU is NaN, which a tracker must not receive as a value
    base = {**TINY, "cache_dir": cache, "eval_every": 2}
    return StudySpec(protocol="layers", base=base, storage=storage, name="tracked", cells=CELLS, verbose=-1,
                     **changes)


@pytest.fixture(scope="module")
def study(module_tmp, teacher_cache) -> Path:
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    run_study(spec(str(module_tmp / "studies"), teacher_cache, trackers=("tensorboard", "mlflow")))
    return module_tmp / "studies" / "tracked"


def rows(study: Path) -> dict[str, list[dict]]:
    return {p.stem: sorted(pq.read_table(p).to_pylist(), key=lambda r: r["epoch"])
            for p in (study / "results" / "epochs").glob("*.parquet")}


def test_tensorboard_holds_every_trials_metrics_per_epoch_without_the_nan_ones(study):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for trial_id, epochs in rows(study).items():
        events = EventAccumulator(str(study / f"trial_{trial_id}"))
        events.Reload()
        loss = [(e.step, e.value) for e in events.Scalars("ray/tune/loss")]
        assert loss == [(r["epoch"], pytest.approx(r["loss"])) for r in epochs]
        miou = [(e.step, e.value) for e in events.Scalars("ray/tune/miou")]
        assert miou == [(r["epoch"], pytest.approx(r["miou"])) for r in epochs if math.isfinite(r["miou"])]
        assert [step for step, _ in miou] == [2]


def test_mlflow_has_a_run_per_trial_with_its_metric_history(study):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"file://{study / 'mlruns'}")
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    by_trial = {r.data.params["trial_id"] if "trial_id" in r.data.params else r.data.tags["trial_name"]: r for r in runs}
    trials = rows(study)
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
    assert not (tmp_path / "tracked").exists()
