"""The results contract (attnfd.study_contract) between the study and the analysis: one import
for both, protocols registered on each side by name, and the search space study.json describes."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_results_folder import CLASSES, trial, write_meta, write_trial
from conftest import TINY

from attnfd.analysis import tables
from attnfd.analysis.figures import alpha_sweep
from attnfd.analysis.report import analyse
from attnfd.analysis.results import load_study
from attnfd.analysis.search import distribution
from attnfd.study import protocols
from attnfd.study.space import SearchSpace
from attnfd.study_contract import (
    CATEGORICAL,
    FLOAT,
    SEARCH,
    SPACE_KEY,
    STUDY_FILE,
    Dimension,
    described_dimensions,
    space_json,
)

REPO = Path(__file__).resolve().parents[1]


def test_the_contract_imports_nothing_heavy_and_the_analysis_neither_torch_nor_ray():
    check = (
        "import sys; import attnfd.study_contract;"
        "print('CONTRACT', sorted(m for m in ('torch', 'ray', 'pandas', 'pyarrow') if m in sys.modules));"
        "import attnfd.analysis, attnfd.analysis.cli, attnfd.analysis.figures, attnfd.analysis.watch;"
        "print('ANALYSIS', sorted(m for m in ('torch', 'ray', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", check], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "CONTRACT []" in out.stdout and "ANALYSIS []" in out.stdout


def test_every_grid_protocol_has_a_table_and_the_search_is_no_grid_protocol():
    # one definition: the study's grid protocols and the search; the analysis tabulates each
    assert set(tables.table_protocols()) == {*protocols.GRID_PROTOCOLS, SEARCH}
    with pytest.raises(ValueError, match="search"):
        protocols.grid_protocol(SEARCH, varied=("alpha",))


class RecordingTrial:
    """Optuna's trial as the space sees it, recording what it is told."""

    def __init__(self):
        self.told = []

    def suggest_float(self, name, low, high, log=False):
        self.told.append(Dimension(name, FLOAT, low=low, high=high, log=log))
        return low

    def suggest_categorical(self, name, choices):
        self.told.append(Dimension(name, CATEGORICAL, choices=tuple(choices)))
        return choices[0]


def test_the_described_space_is_what_optuna_is_told_and_survives_study_json():
    space = SearchSpace(alpha_range=(0.5, 2), extra=("norm", "method"), taps=("stage3", "backbone", "encoder", "decoder"))
    trial_ = RecordingTrial()
    space(trial_)
    assert trial_.told == space.described()
    assert [d.name for d in space.described()] == space.dimensions
    meta = json.loads(json.dumps({SPACE_KEY: space_json(space.described())}))
    assert described_dimensions(meta) == {d.name: d for d in space.described()}
    assert meta[SPACE_KEY]["alpha"] == {"kind": "float", "low": 0.5, "high": 2.0, "log": True}
    # a study written before study.json described its space, or a description this contract does not know
    assert described_dimensions({}) == {}
    assert described_dimensions({SPACE_KEY: {"alpha": {"kind": "beta"}}}) == {}


def search_folder(storage: Path, name: str, alphas: list[float], space: dict | None) -> Path:
    folder = storage / name
    for i, alpha in enumerate(alphas):
        rows = trial(f"t{i}", [(0.6 + 0.01 * i, 0.7, [0.9, 0.5, 0.4], 1.0)], distill="attnfd", alpha=alpha)
        write_trial(folder, rows, protocol=SEARCH)
    write_meta(folder, protocol=SEARCH, seeds=[0], class_names=CLASSES, searched=["alpha"],
               **({SPACE_KEY: space} if space is not None else {}))
    return folder


@pytest.mark.parametrize(("alphas", "said", "log"), [
    ([0.5, 1.0, 2.0], True, True),  # a narrow range the guess would draw linear
    ([0.1, 1.0, 30.0], False, False),  # a wide one the guess would draw on a log scale
    ([0.5, 1.0, 2.0], None, False),  # no description: the guess
    ([0.1, 1.0, 30.0], None, True),
])
def test_the_analysis_takes_a_dimensions_scale_from_study_json_else_guesses_it(tmp_path, alphas, said, log):
    space = None if said is None else space_json([Dimension("alpha", FLOAT, low=alphas[0], high=alphas[-1], log=said)])
    study = load_study(search_folder(tmp_path, "s", alphas, space), quiet=True)
    assert distribution(study, "alpha").log is log
    analysis = analyse(study)
    assert analysis.figures["alpha_sweep"].layout.xaxis.type == ("log" if log else "linear")
    assert analysis.figures["parallel_coordinates"].data[0].dimensions[0].label == ("log10(alpha)" if log else "alpha")
    # with nothing said, the sweep guesses from a decade
    assert alpha_sweep(analysis.rows).layout.xaxis.type == ("log" if alphas[-1] / alphas[0] >= 10 else "linear")


@pytest.fixture
def throwaway_protocol(monkeypatch):
    """A grid protocol of the student alone and AttnFD at two alphas, with a table of its own,
    registered on both sides for one test."""
    monkeypatch.setattr(protocols, "GRID_PROTOCOLS", dict(protocols.GRID_PROTOCOLS))
    monkeypatch.setattr(tables, "PROTOCOL_TABLES", dict(tables.PROTOCOL_TABLES))

    @protocols.grid_protocol("throwaway", varied=("alpha",))
    def cells(student, options):
        return [{"backbone": student, "distill": "attnfd", "alpha": a} for a in (0.5, 2.0)]

    @tables.table_builder("throwaway", "throwaway", "Two alphas")
    def columns(rows):
        return tables.ProtocolColumns(lead=["Student", "alpha x 2"], dedicated=("alpha",),
                                      lead_cells=lambda row: [tables._student(row), tables.format_value(
                                          None if row.is_base else 2 * row.config["alpha"])])

    return "throwaway"


@pytest.mark.usefixtures("local_ray")
def test_a_new_protocol_is_its_cells_and_its_table(tmp_path, teacher_cache, throwaway_protocol):
    from attnfd.study.runner import StudySpec, run_study

    storage = str(tmp_path / "studies")
    cells = protocols.protocol_cells(throwaway_protocol, ["resnet18"])
    spec = StudySpec(protocol=throwaway_protocol, base={**TINY, "cache_dir": teacher_cache, "role": "student",
                                                        "epochs": 1},
                     storage=storage, name="new", cells=cells, seeds=[0], verbose=-1, cohort=1,
                     searched=list(protocols.GRID_PROTOCOLS[throwaway_protocol].varied))
    summary = run_study(spec)
    assert len(summary) == 3 and all(r["status"] == "completed" for r in summary)

    study = load_study(Path(storage) / "new", quiet=True)
    assert study.protocol == throwaway_protocol and study.searched == ["alpha"]
    analysis = analyse(study)
    table = analysis.tables[0]
    assert table.name == "throwaway" and table.title.startswith("Two alphas")
    assert table.header[:2] == ["Student", "alpha x 2"] and "alpha" not in table.header
    assert sorted(row[1] for row in table.body) == ["-", "1", "4"]


@pytest.mark.usefixtures("local_ray")
def test_a_search_writes_its_space_into_study_json(tmp_path, teacher_cache):
    from attnfd.study.runner import StudySpec, run_study

    storage = str(tmp_path / "studies")
    space = SearchSpace(alpha_range=(0.5, 2.0))
    spec = StudySpec(protocol=SEARCH, base={**TINY, "cache_dir": teacher_cache, "role": "student", "distill": "attnfd",
                                            "epochs": 1},
                     storage=storage, name="s", space=space, searched=space.dimensions, num_samples=1,
                     reference=False, asha=False, verbose=-1)
    run_study(spec)
    meta = json.loads((Path(storage) / "s" / STUDY_FILE).read_text())
    assert meta[SPACE_KEY] == space_json(space.described())
    # the one trial's alpha spans no range to guess from: the scale is the space's
    study = load_study(Path(storage) / "s", quiet=True)
    assert math.isclose(study.trials["config/alpha"].iloc[0], 1.0) and distribution(study, "alpha").log
