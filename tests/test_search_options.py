"""A method's options are search dimensions like any config field (``--search kd.temperature``):
drawn by the option's type around its default, carried to the run through distill_options and
into the rows under their own name."""

from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
from conftest import TINY

from attnfd.config import ConfigError, TrainConfig
from attnfd.distill.spec import parse_methods
from attnfd.study.results import flat_config
from attnfd.study.space import SearchSpace
from attnfd.study.trainable import trial_values

OPTIONS = ("kd.temperature", "cirkd.memory_pixel", "cirkd.pixel_memory", "pfs.relu", "cirkd.layer", "at.layers")


def test_option_dimensions_are_drawn_by_type_around_the_data_sets_default():
    space = SearchSpace(extra=OPTIONS, dataset="voc")
    assert space.dimensions[3:] == list(OPTIONS)
    # the paper's setting takes each option's default for the data set (CIRKD's memory lambdas are 0.01 on VOC)
    paper = space.paper_point(1.0)
    assert [paper[o] for o in OPTIONS] == [1.0, 0.01, 20000, True, "encoder", "encoder"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        space(trial)
        p = trial.params
        assert 0.1 <= p["kd.temperature"] <= 10 and 0.001 <= p["cirkd.memory_pixel"] <= 0.1
        assert isinstance(p["cirkd.pixel_memory"], int) and 2000 <= p["cirkd.pixel_memory"] <= 200000
        assert p["pfs.relu"] in (True, False) and p["cirkd.layer"] in ("backbone", "encoder", "decoder")
        assert set(p["at.layers"].split("+")) <= {"backbone", "encoder", "decoder"}
    with pytest.raises(ConfigError, match="kd has no option 'temp'"):
        SearchSpace(extra=("kd.temp",))
    with pytest.raises(ConfigError, match="cannot search learning_rate"):
        SearchSpace(extra=("learning_rate",))


def test_a_trials_option_reaches_the_run_and_its_row():
    trial = {**TINY, "distill": "kd", "distill_options": "kd.temperature=9,at.p=3", "kd.temperature": 3.5,
             "at.layers": "encoder+decoder"}
    values = trial_values(trial)
    assert "kd.temperature" not in values
    assert values["distill_options"] == "at.p=3,kd.temperature=3.5,at.layers=encoder+decoder"
    config = TrainConfig.from_dict(values)
    (kd,) = parse_methods(config)
    assert kd.options.temperature == 3.5
    row = flat_config(trial)
    assert row["config/kd.temperature"] == 3.5 and row["config/distill_options"] == values["distill_options"]
    assert row["config/at.layers"] == "encoder+decoder"


def test_a_search_over_kd_temperature(tmp_path, teacher_cache, capsys):
    from attnfd.study.cli import search_main

    tiny = [arg for key in ("image_size", "train_size", "val_size", "batch_size", "head_channels", "teacher_backbone",
                            "teacher_epochs", "lr") for arg in ("--set", f"{key}={TINY[key]}")]
    storage = tmp_path / "studies"
    search_main(["--set", "distill=kd", "--search", "kd.temperature", "--num-samples", "2", "--epochs", "1",
                 "--confirm", "0", "--no-asha", "--gpus-per-trial", "0", "--cache-dir", teacher_cache, "--quiet",
                 "--storage", str(storage), "--name", "kdt", *tiny])
    capsys.readouterr()
    rows = [r for r in pq.read_table(Path(storage) / "kdt" / "results" / "summary.parquet").to_pylist()
            if r["config/distill"] == "kd"]
    assert len(rows) == 2 and all(r["status"] == "completed" for r in rows)
    temperatures = sorted(r["config/kd.temperature"] for r in rows)
    # the paper's setting first: kd's default temperature, then one TPE drew
    assert 1.0 in temperatures and all(0.1 <= t <= 10 for t in temperatures)
    for r in rows:
        assert r["config/distill_options"] == f"kd.temperature={r['config/kd.temperature']}"
        assert r["loss_kd"] is not None

    from attnfd.analysis.results import load_study
    from attnfd.analysis.search import dimensions

    assert "kd.temperature" in dimensions(load_study(Path(storage) / "kdt"))


def test_a_search_over_the_method_is_not_refused_as_fixed(tmp_path, monkeypatch):
    """--search method draws the method; the search's default (AttnFD) must not also fix it."""
    from attnfd.study import runner
    from attnfd.study.cli import search_main

    specs = []

    def validate_only(spec):
        runner.validate(spec)
        specs.append(spec)
        return []

    monkeypatch.setattr(runner, "run_study", validate_only)
    search_main(["--search", "method", "--storage", str(tmp_path), "--name", "m", "--quiet"])
    (spec,) = specs
    assert "distill" in spec.space.dimensions and "distill" not in spec.base
    # the paper's point still distils with AttnFD
    assert spec.space.paper_point(1.0)["distill"] == "attnfd"
    # fixing the method while searching it is still refused
    with pytest.raises(SystemExit):
        search_main(["--search", "method", "--set", "distill=kd", "--storage", str(tmp_path), "--name", "k", "--quiet"])
