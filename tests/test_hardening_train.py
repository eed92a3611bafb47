"""``attnfd train`` on bad input and faults (issue 13): one line and exit 2 before anything
starts, exit 1 with the epoch and step for a diverging run, no run replaced without asking,
a damaged cached teacher moved aside and rebuilt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY
from hardening_checks import digest, one_line_error, tree, truncate

from attnfd.cli import main


def train_args(values: dict, *extra: str) -> list[str]:
    args = ["train"]
    for key, value in values.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return [*args, *extra]


def run_main(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


@pytest.mark.parametrize("extra, parts", [
    # item 1: weights and alpha must be finite
    (["--distill", "attnfd:nan"], ["weight of distillation method attnfd", "finite", "nan"]),
    (["--distill", "attnfd:inf,kd"], ["weight of distillation method attnfd", "finite", "inf"]),
    (["--distill", "attnfd", "--alpha", "inf"], ["--alpha", "finite number", "'inf'"]),
    (["--lr", "nan"], ["--lr", "finite number", "'nan'"]),
    (["--momentum", "1.5"], ["momentum must be in [0, 1)", "1.5"]),
    # item 9: a boolean flag takes true or false words only
    (["--amp", "maybe"], ["--amp", "true or false", "'maybe'"]),
    (["--epochs", "abc"], ["--epochs", "an integer", "'abc'"]),
    # item 12: shapes is generated; a data root would be ignored
    (["--data-root", "/nonexistent"],
     ["data_root applies to the data sets on disk (voc, cityscapes", "shapes is generated", "/nonexistent"]),
    (["--out-dir", ""], ["out_dir is empty"]),
    (["--workers", "-1"], ["workers must be >= 0"]),
    (["--train-size", "0"], ["train_size must be >= 1"]),
    (["--image-size", "0"], ["image_size must be"]),
    # found by the sweep
    (["--distill", "kd", "--distill-options", "kd.temperature=nan"], ["kd.temperature", "finite number", "'nan'"]),
    (["--aspp-rates", "1,,2"], ["--aspp-rates", "integers", "'1,,2'"]),
])
def test_bad_train_input_is_one_line_and_exit_2_before_anything_is_written(tmp_path, capsys, monkeypatch, extra,
                                                                           parts):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["train", "--cache-dir", str(tmp_path / "cache"), *extra], capsys)
    assert code == 2
    one_line_error(err, *parts)
    assert tree(tmp_path) == {}, "nothing may be written"


@pytest.mark.parametrize("argv, parts", [
    (["train", "--distill", "attnfd", "--cache-dir", "{file}"], ["cache_dir", "is a file, not a folder"]),
    (["train", "--out-dir", "{file}/run"], ["--out-dir", "cannot be created", "is a file"]),
    (["train", "--resume", "{folder}"], ["resume checkpoint", "holds no checkpoint"]),
    (["train", "--resume", "{file}"], ["cannot read", "{file}"]),
    (["data", "check", "--dataset", "voc", "--root", "{folder}", "--workers", "-1"], ["--workers must be >= 1"]),
])
def test_paths_that_are_files_or_empty_folders_are_one_line(tmp_path, capsys, monkeypatch, argv, parts):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "a-folder").mkdir()
    names = {"file": str(tmp_path / "a-file"), "folder": str(tmp_path / "a-folder")}
    before = tree(tmp_path)
    code, _, err = run_main([a.format(**names) for a in argv], capsys)
    assert code == 2
    one_line_error(err, *(p.format(**names) for p in parts))
    assert tree(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder"]


def test_a_diverging_run_ends_with_exit_1_naming_epoch_step_and_loss_parts(tiny, capsys):
    code, _, err = run_main(train_args({**tiny, "lr": 1e12, "epochs": 2, "train_size": 16}), capsys)
    assert code == 1
    line = one_line_error(err, "the run diverged", "epoch 1, step", "ce=", "loss=")
    assert "no model.pt was written" in line
    assert not (Path(tiny["out_dir"]) / "model.pt").exists()


def test_a_finished_run_is_not_replaced_without_asking(tiny, capsys):
    values = {k: v for k, v in tiny.items() if k != "cache_dir"}
    values["epochs"] = 1
    out_dir = Path(values["out_dir"])
    main(train_args(values))
    capsys.readouterr()
    before = tree(out_dir)
    assert "model.pt" in before and "checkpoint/state.pt" in before

    code, _, err = run_main(train_args({**values, "seed": 3}), capsys)
    assert code == 2
    one_line_error(err, str(out_dir), "holds a finished run (model.pt)", "--resume", "--overwrite")
    assert tree(out_dir) == before, "the earlier run must be untouched"

    # --resume into its own folder is allowed (a finished run has nothing left to do)
    main(train_args(values, "--resume", str(out_dir)))
    assert "model written to" in capsys.readouterr().out
    assert tree(out_dir)["checkpoint/state.pt"] == before["checkpoint/state.pt"], "no epoch was run again"
    # --overwrite replaces it
    main(train_args({**values, "seed": 3}, "--overwrite"))
    assert "model written to" in capsys.readouterr().out
    assert digest(out_dir / "model.pt") != before["model.pt"]


def test_default_out_dirs_differ_by_config(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = {**TINY, "epochs": 1}
    for seed in (0, 1):
        main(train_args({**values, "seed": seed}))
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 2, runs
    assert all(name.startswith("student-resnet18-shapes-") for name in runs)
    assert all((tmp_path / "runs" / name / "model.pt").is_file() for name in runs)
    written = [line for line in capsys.readouterr().out.splitlines() if line.startswith("model written to")]
    assert len(set(written)) == 2


def test_a_damaged_cached_teacher_is_moved_aside_and_rebuilt(tiny, tmp_path, capsys):
    cache = tmp_path / "own-cache"
    values = {**tiny, "cache_dir": str(cache), "distill": "attnfd", "epochs": 1}
    main(train_args(values))
    capsys.readouterr()
    (teacher,) = (cache / "teachers").glob("*/model.pt")
    checksum = teacher.with_name("model.pt.sha256")
    assert checksum.read_text().strip() == digest(teacher)

    # truncated model.pt, intact checkpoint: rebuilt from the checkpoint
    truncate(teacher)
    damaged = digest(teacher)
    main(train_args({**values, "out_dir": str(tmp_path / "second")}))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"the cached teacher {teacher} is damaged (its sha256 does not match); moved it to" in err
    (aside,) = [p for p in teacher.parent.glob("model.pt.corrupt-*") if p.suffix != ".sha256"]
    assert digest(aside) == damaged, "the damaged file is kept, renamed"
    assert checksum.read_text().strip() == digest(teacher) != damaged
    assert (tmp_path / "second" / "model.pt").is_file()

    # garbage model.pt and garbage checkpoint: trained again from epoch 1
    teacher.write_bytes(b"not a model")
    state = teacher.parent / "checkpoint" / "state.pt"
    state.write_bytes(b"\x00garbage" * 10)
    main(train_args({**values, "out_dir": str(tmp_path / "third")}))
    err = capsys.readouterr().err
    assert "Traceback" not in err and "is damaged" in err and "the teacher starts from epoch 1" in err
    assert [p for p in teacher.parent.glob("model.pt.corrupt-*") if p.suffix != ".sha256"]
    assert list(state.parent.glob("state.pt.corrupt-*"))
    assert checksum.read_text().strip() == digest(teacher)
    from attnfd.model_files import load_model

    load_model(teacher)


PROBE = """
import sys
from attnfd.cli import main
try:
    main(sys.argv[1:])
except SystemExit as stop:
    print(stop.code, "torch" in sys.modules)
"""


@pytest.mark.parametrize("args", [
    ["evaluate", "--checkpoint", "typo.pt"],
    ["evaluate", "--checkpoint", "."],
    ["train", "--resume", "typo/checkpoint"],
    ["train", "--backbone", "resnet7"],
    ["train", "--distill", "atnfd"],
    ["train", "--amp", "maybe"],
])
def test_paths_and_arguments_are_checked_before_torch_is_imported(tmp_path, args):
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=tmp_path,
                            timeout=120, check=False)
    assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr
    one_line_error(result.stderr)
