"""tune/search.py and tune/ablation.py as a user runs them: bad input stops in the driver,
an interrupted study resumes without repeating finished trials or duplicating rows, and
--resume auto lets the same command start a study and continue it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import TINY

from attnfd.study.cli import ablation_main, search_main

ROOT = Path(__file__).resolve().parents[1]
TINY_SET = [arg for key in ("image_size", "train_size", "val_size", "batch_size", "head_channels", "teacher_backbone",
                            "teacher_epochs", "lr") for arg in ("--set", f"{key}={TINY[key]}")]


@pytest.mark.parametrize("main, args, message", [
    (search_main, ["--student", "resnet9"], "resnet9"),
    (search_main, ["--alpha-range", "2:30"], "leaves out the paper's alpha"),
    (search_main, ["--search", "learning_rate"], "cannot search learning_rate"),
    (search_main, ["--set", "alpha=3"], "alpha is searched"),
    (ablation_main, ["--protocol", "alpha", "--layer-subsets", "encoder;,"], "layer"),
    (ablation_main, ["--protocol", "methods", "--methods", "attnfd,nosuchkd"], "nosuchkd"),
    (ablation_main, ["--seeds", "0"], "--seeds"),
    (ablation_main, ["--set", "alpha=-1"], "alpha"),
    (ablation_main, ["--cohort", "0"], "--cohort must be auto or a number"),
])
def test_a_bad_config_exits_with_one_line_before_ray_starts(tmp_path, capsys, main, args, message):
    import ray

    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--storage", str(tmp_path / "studies"), "--name", "bad", "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not ray.is_initialized()
    assert not (tmp_path / "studies" / "bad").exists()


def test_resume_needs_a_study_and_a_new_study_needs_a_free_name(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ablation_main(["--resume", "--name", "nothing", "--storage", str(tmp_path)])
    assert "no study 'nothing' to resume" in capsys.readouterr().err

    from attnfd.study.results import write_study_meta

    write_study_meta(str(tmp_path), "taken", {"protocol": "layers"})
    with pytest.raises(SystemExit):
        ablation_main(["--name", "taken", "--storage", str(tmp_path)])
    assert "a study 'taken' exists" in capsys.readouterr().err


def test_resume_auto_needs_a_name_and_a_new_study_still_needs_a_free_one(tmp_path, capsys, teacher_cache):
    def refused(argv, message):
        with pytest.raises(SystemExit) as exit_info:
            # a tiny study, should one start when it ought to be refused
            search_main([*argv, "--storage", str(tmp_path), "--quiet", "--epochs", "1", "--num-samples", "1",
                         "--confirm", "0", "--gpus-per-trial", "0", "--cache-dir", teacher_cache, *TINY_SET])
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and message in err, err

    refused(["--resume", "maybe", "--name", "s"], "--resume")
    refused(["--resume", "auto"], "give its --name")  # a requeued job must find its own study
    from attnfd.study.results import write_study_meta

    write_study_meta(str(tmp_path), "grid", {"protocol": "layers"})
    refused(["--resume", "auto", "--name", "grid"], "is a layers study")
    # starting afresh, it is a new study: the name must be free in a lab's Optuna database too
    import optuna

    database = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="taken", storage=database)
    capsys.readouterr()  # Optuna's own line about it
    refused(["--resume", "auto", "--name", "taken", "--optuna-storage", database], "already holds a study 'taken'")
    assert not (tmp_path / "taken").exists()


def epochs_by_trial(study: Path) -> dict[str, list[dict]]:
    return {p.stem: pq.read_table(p).to_pylist() for p in sorted((study / "results" / "epochs").glob("*.parquet"))}


@pytest.mark.parametrize("cohort", ["1", "2"], ids=["a-trial-per-cell", "cohorts-of-2"])
def test_an_interrupted_study_resumes_without_repeating_finished_trials(tmp_path, teacher_cache, cohort):
    """The same command twice, as a requeued job reruns it: --resume auto starts the study, then continues it
    (each cell a trial of its own, or two cells per cohort trial)."""
    storage = tmp_path / "studies"
    command = [sys.executable, str(ROOT / "tune" / "ablation.py"), "--protocol", "alpha", "--students", "resnet18",
               "--alphas", "0.5,1,2", "--layer-subsets", "encoder", "--seeds", "1", "--epochs", "2",
               "--max-concurrent", "1", "--storage", str(storage), "--name", "r", "--resume", "auto",
               "--cache-dir", teacher_cache, "--gpus-per-trial", "0", "--quiet", "--cohort", cohort, *TINY_SET]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    study = storage / "r"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        trials = epochs_by_trial(study).values() if (study / "results" / "epochs").is_dir() else []
        done = [rows for rows in trials if rows and rows[-1]["status"] == "completed"]
        # a trial's last row is written before Tune registers its checkpoint, and a Ctrl-C in
        # between reruns that epoch; with one trial at a time, a later trial's first row means
        # Tune has finished the ones before it
        if len(done) >= 2 and len(trials) > len(done):
            break
        time.sleep(0.2)
    assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
    first.send_signal(signal.SIGINT)  # Ctrl-C
    first.wait(timeout=120)

    before = epochs_by_trial(study)
    finished = {tid: rows for tid, rows in before.items() if rows[-1]["status"] == "completed"}
    assert 2 <= len(finished) < 4, "the study was not interrupted part way"

    assert "study r: not in" in (tmp_path / "first.log").read_text()
    resumed = subprocess.run(command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "study r: continuing it" in resumed.stdout
    after = epochs_by_trial(study)
    assert len(after) == 1 + 3
    for tid, rows in after.items():
        assert [r["epoch"] for r in rows] == [1, 2], tid
        assert rows[-1]["status"] == "completed"
    for tid, rows in finished.items():
        # not run again: the same rows, processes and timings (as text: NaN != NaN)
        assert json.dumps(after[tid], sort_keys=True) == json.dumps(rows, sort_keys=True)
    summary = pq.read_table(study / "results" / "summary.parquet").to_pylist()
    assert sorted(r["trial_id"] for r in summary) == sorted(after)
    assert "study r: 4 trials (4 completed)" in resumed.stdout
    # its Optuna study: one trial per Tune trial, the interrupted ones continued, not doubled
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    recorded = optuna.load_study(study_name="r", storage=JournalStorage(JournalFileBackend(str(study / "optuna.journal"))))
    trials = recorded.get_trials()
    assert sorted(t.user_attrs["tune_trial_id"] for t in trials) == sorted(after)
    assert {t.state.name for t in trials} == {"COMPLETE"}
    assert {t.user_attrs["tune_trial_id"]: t.value for t in trials} == \
        pytest.approx({tid: rows[-1]["miou"] for tid, rows in after.items()})
