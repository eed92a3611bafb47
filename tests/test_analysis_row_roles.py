"""The analysis reads which config fields tell rows apart from study.json, else from attnfd.config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from analysis_results_folder import CLASSES, trial, write_study

from attnfd.analysis import load_study
from attnfd.analysis.results import cell_fields
from attnfd.analysis.row_roles import STUDY_KEY, RowRoles
from attnfd.config import TrainConfig
from attnfd.config_sections import field_roles

REPO = Path(__file__).resolve().parents[1]


def test_a_study_without_roles_reads_those_of_the_config():
    roles = RowRoles.of({})
    assert "seed" in roles.never and "workers" in roles.never and "amp" not in roles.never
    assert "alpha" in roles.when_distilling and "distill" not in roles.when_distilling
    assert RowRoles.of({STUDY_KEY: field_roles(TrainConfig)}) == roles


def test_the_roles_a_study_wrote_decide_its_rows(tmp_path):
    early = (0.5, 0.5, [0.5, 0.5, 0.5], 2.0)
    trials = [trial(f"t_{i:05d}", [early], seed=0, workers=workers) for i, workers in enumerate((0, 2))]
    folder = write_study(tmp_path, "placed", trials, protocol="search", seeds=1, class_names=CLASSES)
    assert "workers" not in cell_fields(load_study(folder).trials, load_study(folder).row_roles)

    meta_file = folder / "results" / "study.json"
    meta = json.loads(meta_file.read_text())
    written = field_roles(TrainConfig)
    written["workers"] = {**written["workers"], "row": "yes"}  # a study whose config said workers matter
    meta_file.write_text(json.dumps({**meta, STUDY_KEY: written}))
    study = load_study(folder)
    assert "workers" in cell_fields(study.trials, study.row_roles)


def test_the_analysis_and_the_config_import_no_torch_or_ray():
    check = ("import sys, attnfd.analysis, attnfd.config, attnfd.config_sections;"
             "print(sorted(m for m in ('torch', 'ray', 'torchvision') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", check], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]"
