"""``python analysis/ablation.py`` on a results folder holding rows of another study or
protocol (issue 13, item 7): refused in one line, nothing written."""

from __future__ import annotations

import json
import shutil

import pytest
from analysis_results_folder import layers_study, search_study
from hardening_checks import one_line_error, tree

from attnfd.analysis.cli import main


def run_main(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    return stop.value.code, capsys.readouterr().err


def test_a_copied_parquet_file_of_another_study_is_refused(tmp_path, capsys):
    study = layers_study(tmp_path / "a")
    other = search_study(tmp_path / "b")
    copied = min((other / "results" / "epochs").glob("*.parquet"))
    shutil.copy(copied, study / "results" / "epochs" / "copied.parquet")
    before = tree(study)
    code, err = run_main(["--results", str(study)], capsys)
    assert code == 2
    one_line_error(err, "results/epochs/copied.parquet", "study 'search'", "protocol 'search'",
                   "study 'ablation' (protocol 'layers') that study.json names", "move those files out")
    assert tree(study) == before and not (study / "analysis").exists()


def test_rows_of_another_protocol_are_refused_too(tmp_path, capsys):
    study = layers_study(tmp_path / "a")
    meta_file = study / "results" / "study.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "protocol": "methods"}))
    code, err = run_main(["--results", str(study)], capsys)
    assert code == 2
    one_line_error(err, "protocol 'layers'", "protocol 'methods'")
    assert not (study / "analysis").exists()


def test_without_study_json_files_must_agree(tmp_path, capsys):
    study = layers_study(tmp_path / "a")
    other = search_study(tmp_path / "b")
    (study / "results" / "study.json").unlink()
    (study / "results" / "summary.parquet").unlink(missing_ok=True)
    shutil.copy(min((other / "results" / "epochs").glob("*.parquet")), study / "results" / "epochs" / "x.parquet")
    code, err = run_main(["--results", str(study)], capsys)
    assert code == 2
    assert "results/epochs/x.parquet (study 'search'" in err and "of most files" in err
    assert not (study / "analysis").exists()


def test_a_study_json_that_is_not_an_object_is_one_line(tmp_path, capsys):
    study = layers_study(tmp_path / "a")
    (study / "results" / "study.json").write_text("[1, 2]")
    code, err = run_main(["--results", str(study)], capsys)
    assert code == 2
    one_line_error(err, "study.json is not a JSON object")


@pytest.mark.parametrize("argv, parts", [
    (["--top", "x"], ["--top", "an integer", "'x'"]),
    (["--protocol", "tables"], ["--protocol", "invalid choice"]),
    (["--correction", "bonferroni"], ["--correction", "invalid choice"]),
    (["--detect", "0"], ["--detect must be > 0"]),
    (["--detect", "nan"], ["--detect", "finite number"]),
    (["--watch", "0"], ["--watch must be > 0 seconds"]),
])
def test_bad_analysis_arguments_are_one_line(tmp_path, capsys, argv, parts):
    study = layers_study(tmp_path / "a")
    code, err = run_main([*argv, "--results", str(study)], capsys)
    assert code == 2
    one_line_error(err, *parts)
    assert not (study / "analysis").exists()
