"""``tune/search.py`` and ``tune/ablation.py`` on bad input and faults (issue 13): one line and
exit 2 before Ray starts, study.json written atomically, and a trial whose newest checkpoint
is damaged resumes from the newest readable one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from hardening_checks import one_line_error, tree, truncate
from test_study_cli import ROOT, TINY_SET, epochs_by_trial

from attnfd.cli import main as attnfd_main
from attnfd.study.cli import ablation_main, search_main


def refused(capsys, main, args, *parts, name: str = "bad") -> None:
    import ray

    with pytest.raises(SystemExit) as stop:
        main([*args, "--name", name, "--quiet"])
    assert stop.value.code == 2
    one_line_error(capsys.readouterr().err, *parts)
    assert not ray.is_initialized(), "Ray must not start for bad input"


@pytest.mark.parametrize("main, args, parts", [
    # item 1: alphas must be finite
    (ablation_main, ["--protocol", "alpha", "--alphas", "0.1,inf"], ["--alphas", "finite", "'inf'"]),
    (ablation_main, ["--protocol", "alpha", "--alphas", "1,x"], ["--alphas", "numbers", "'x'"]),
    (search_main, ["--alpha-range", "0.1:nan"], ["--alpha-range", "finite"]),
    # item 2: --set values are typed
    (search_main, ["--set", "epochs=abc"], ["--set epochs", "an integer", "'abc'"]),
    (search_main, ["--set", "amp=maybe"], ["--set amp", "true or false", "'maybe'"]),
    (search_main, ["--set", "lr=inf"], ["--set lr", "finite number"]),
    # item 10: an empty layer-subset list is refused, not replaced by all three taps
    (ablation_main, ["--protocol", "alpha", "--layer-subsets", ";"], ["--layer-subsets", "names no layer subset"]),
    (ablation_main, ["--protocol", "methods", "--methods", ","], ["--methods", "names no method"]),
    # item 12: shapes reads no files
    (search_main, ["--data-root", "/nonexistent"],
     ["data_root applies to the data sets on disk (voc, cityscapes", "shapes is generated"]),
    (search_main, ["--cpus-per-trial", "nan"], ["--cpus-per-trial", "finite number"]),
    (search_main, ["--cpus-per-trial", "0"], ["--cpus-per-trial must be > 0"]),
    (search_main, ["--max-concurrent", "0"], ["--max-concurrent must be >= 1"]),
    (search_main, ["--num-samples", "many"], ["--num-samples", "an integer"]),
    (search_main, ["--confirm", "-1"], ["--confirm must be >= 0"]),
    (search_main, ["--confirm-seeds", "0"], ["--confirm-seeds must be >= 1"]),
    (ablation_main, ["--name", "a/b"], ["--name must be a plain folder name"]),
])
def test_bad_study_input_is_one_line_and_exit_2_before_ray_starts(tmp_path, capsys, main, args, parts):
    storage = tmp_path / "studies"
    with pytest.raises(SystemExit) as stop:
        main([*args, "--storage", str(storage), "--quiet"] + ([] if "--name" in args else ["--name", "bad"]))
    assert stop.value.code == 2
    one_line_error(capsys.readouterr().err, *parts)
    import ray

    assert not ray.is_initialized()
    assert tree(tmp_path) == {}


@pytest.mark.parametrize("where", ["under_a_file", "a_file"])
def test_storage_that_cannot_be_a_folder_is_refused_before_ray_starts(tmp_path, capsys, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    storage = blocker / "studies" if where == "under_a_file" else blocker
    refused(capsys, search_main, ["--storage", str(storage)], "--storage", str(blocker), "is a file")
    assert tree(tmp_path) == {"blocker": tree(tmp_path)["blocker"]}


def test_a_teacher_cache_that_is_a_file_is_refused_before_ray_starts(tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    refused(capsys, search_main, ["--storage", str(tmp_path / "studies"), "--cache-dir", str(blocker)],
            "cache_dir", str(blocker), "is a file")
    assert not (tmp_path / "studies").exists()


def test_a_local_study_checks_its_data_root_before_ray_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ATTNFD_DATA", raising=False)
    refused(capsys, ablation_main, ["--storage", str(tmp_path / "studies"), "--dataset", "voc"], "no data root for voc")
    refused(capsys, ablation_main, ["--storage", str(tmp_path / "studies"), "--dataset", "voc", "--data-root",
                                    str(tmp_path)], "voc data at", "is not usable")
    assert not (tmp_path / "studies").exists()


def test_study_json_is_replaced_atomically(tmp_path):
    from attnfd.study.results import read_study_meta, write_study_meta

    write_study_meta(str(tmp_path), "s", {"protocol": "layers"})
    before = tree(tmp_path)
    with pytest.raises(TypeError):
        write_study_meta(str(tmp_path), "s", {"protocol": "layers", "seeds": {1, 2}})  # a set is not JSON
    assert tree(tmp_path) == before, "the old study.json is intact and no temporary file is left"
    assert read_study_meta(str(tmp_path), "s")["protocol"] == "layers"


def test_a_damaged_study_json_is_one_line(tmp_path, capsys):
    from attnfd.study.results import write_study_meta

    write_study_meta(str(tmp_path), "s", {"protocol": "layers"})
    meta = tmp_path / "s" / "results" / "study.json"
    truncate(meta)
    before = tree(tmp_path)
    refused(capsys, ablation_main, ["--storage", str(tmp_path), "--resume"], str(meta), "is damaged", name="s")
    refused(capsys, ablation_main, ["--storage", str(tmp_path)], str(meta), "is damaged", name="s")
    assert tree(tmp_path) == before


def test_a_trial_whose_newest_checkpoint_is_damaged_resumes_from_an_older_one(tmp_path, teacher_cache, capsys):
    storage = tmp_path / "studies"
    command = [sys.executable, str(ROOT / "tune" / "ablation.py"), "--protocol", "alpha", "--students", "resnet18",
               "--alphas", "1", "--layer-subsets", "encoder", "--seeds", "1", "--epochs", "6",
               "--max-concurrent", "1", "--storage", str(storage), "--name", "c", "--cache-dir", teacher_cache,
               "--gpus-per-trial", "0", "--quiet", "--cohort", "1", *TINY_SET, "--set", "train_size=24"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    study = storage / "c"
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        # interrupt once some trial has two checkpoints and epochs left to run
        running = [rows for rows in epochs_by_trial(study).values() if rows and 2 <= rows[-1]["epoch"] <= 4
                   and rows[-1]["status"] == "running"] if (study / "results" / "epochs").is_dir() else []
        if running:
            break
        time.sleep(0.1)
    assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
    first.send_signal(signal.SIGINT)
    first.wait(timeout=120)

    unfinished = {tid: rows for tid, rows in epochs_by_trial(study).items() if rows[-1]["status"] != "completed"}
    assert unfinished, "the study was not interrupted part way"
    tid = next(iter(unfinished))
    checkpoints = sorted((study / f"trial_{tid}").glob("checkpoint_*/state.pt"))
    assert len(checkpoints) >= 2, checkpoints  # Tune keeps two (a third until it deletes the oldest)
    # every checkpoint but the oldest damaged: the one Tune hands back (the newest it had
    # registered when interrupted, which may lag the newest on disk) is among them
    for path in checkpoints[1:]:
        truncate(path)
    oldest = checkpoints[0].parent.name

    resumed = subprocess.run([*command, "--resume"], check=False, cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=600)
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output[-3000:]
    assert any(f"trial checkpoint {p.parent.name} is unreadable (cannot read" in output for p in checkpoints[1:]), \
        output[-3000:]
    assert f"resuming from {oldest} (epoch " in output
    after = epochs_by_trial(study)
    assert [r["epoch"] for r in after[tid]] == [1, 2, 3, 4, 5, 6]
    assert all(rows[-1]["status"] == "completed" for rows in after.values())
    assert "study c: 2 trials (2 completed)" in resumed.stdout
    summary = pq.read_table(study / "results" / "summary.parquet").to_pylist()
    assert {r["trial_id"] for r in summary} == set(after)

    # a trial folder is a checkpoint argument too (item 14)
    attnfd_main(["evaluate", "--checkpoint", str(study / f"trial_{tid}"), "--device", "cpu"])
    metrics = json.loads(capsys.readouterr().out.strip())
    assert metrics["dataset"] == "shapes" and f"trial_{tid}/checkpoint_" in metrics["checkpoint"]


PROBE = """
import sys
from attnfd.study.cli import ablation_main, search_main
try:
    {"search": search_main, "ablation": ablation_main}[sys.argv[1]](sys.argv[2:])
except SystemExit as stop:
    print(stop.code, "torch" in sys.modules, "ray" in sys.modules)
"""


@pytest.mark.parametrize("args", [
    ["search", "--set", "epochs=abc"],
    ["search", "--alpha-range", "1"],
    ["ablation", "--protocol", "alpha", "--alphas", "inf"],
    ["ablation", "--protocol", "alpha", "--layer-subsets", ";"],
    ["ablation", "--seeds", "x"],
])
def test_study_arguments_are_checked_before_torch_and_ray_are_imported(tmp_path, args):
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=tmp_path,
                            timeout=120, check=False)
    assert result.stdout.split() == ["2", "False", "False"], result.stdout + result.stderr
    one_line_error(result.stderr)
    assert tree(tmp_path) == {}
