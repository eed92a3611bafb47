"""``attnfd evaluate`` and ``analysis/attention_maps.py`` on damaged files and on every kind of
checkpoint the project writes (issue 13, items 4 and 14)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import with_teacher
from hardening_checks import one_line_error, tree, truncate

from attnfd.attention_maps_cli import main as maps_main
from attnfd.cli import main
from attnfd.trainer import fit


@pytest.fixture(scope="module")
def run(module_tmp) -> Path:
    """A tiny AttnFD student's run folder (model.pt and checkpoint/state.pt)."""
    root = module_tmp
    fit(with_teacher({"dataset": "shapes", "image_size": 32, "head_channels": 16, "train_size": 4, "val_size": 3,
                      "epochs": 1, "teacher_epochs": 1, "batch_size": 2, "teacher_backbone": "resnet18",
                      "backbone": "resnet18", "device": "cpu", "cache_dir": str(root / "cache"),
                      "out_dir": str(root / "run"), "distill": "attnfd", "layers": "encoder,decoder"}))
    return root / "run"


def evaluate(path, capsys) -> tuple[int, str, str]:
    try:
        main(["evaluate", "--checkpoint", str(path), "--device", "cpu"])
        code = 0
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def strict_json(line: str) -> dict:
    def refuse(token):
        raise AssertionError(f"not valid JSON: {token}")

    return json.loads(line, parse_constant=refuse)


def damaged_files(run: Path, folder: Path) -> dict[str, Path]:
    folder.mkdir()
    files = {name: folder / f"{name}.pt" for name in ("truncated", "garbage", "tensor", "other_architecture")}
    shutil.copy(run / "model.pt", files["truncated"])
    truncate(files["truncated"])
    files["garbage"].write_bytes(bytes(range(256)) * 40)
    torch.save(torch.zeros(3), files["tensor"])
    state = torch.load(run / "model.pt", weights_only=False)
    state["config"]["backbone"] = "resnet34"
    torch.save(state, files["other_architecture"])
    return files


@pytest.mark.parametrize("kind, parts", [
    ("truncated", ["cannot read", "truncated or not written by attnfd"]),
    ("garbage", ["cannot read", "truncated or not written by attnfd"]),
    ("tensor", ["is not a checkpoint written by attnfd", "Tensor"]),
    ("other_architecture", ["its weights do not fit the model its config describes", "resnet34"]),
])
def test_evaluate_names_a_damaged_file_in_one_line(run, tmp_path, capsys, kind, parts):
    files = damaged_files(run, tmp_path / "files")
    before = tree(tmp_path)
    code, out, err = evaluate(files[kind], capsys)
    assert code == 2 and out == ""
    one_line_error(err, str(files[kind]), *parts)
    assert tree(tmp_path) == before, "nothing written, nothing moved"


def test_attention_maps_name_a_damaged_state_in_one_line(run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    truncate(copy / "checkpoint" / "state.pt")
    with pytest.raises(SystemExit) as stop:
        maps_main(["--checkpoint", str(copy / "model.pt"), "--out", str(tmp_path / "maps.png")])
    assert stop.value.code == 2
    one_line_error(capsys.readouterr().err, str(copy / "checkpoint" / "state.pt"), "cannot read")
    assert not (tmp_path / "maps.png").exists()


def test_evaluate_prints_strict_json(run, capsys):
    code, out, err = evaluate(run / "model.pt", capsys)
    assert code == 0, err
    metrics = strict_json(out.strip())
    assert metrics["dataset"] == "shapes" and 0 <= metrics["miou"] <= 1
    # a class absent from labels and predictions has no IoU: null, not NaN
    assert all(v is None or 0 <= v <= 1 for v in metrics["per_class_iou"])


def trial_folder(run: Path, root: Path) -> Path:
    """A study trial's layout: checkpoint_<N>/state.pt, the newest one damaged."""
    trial = root / "trial_abc_00000"
    (trial / "checkpoint_000000").mkdir(parents=True)
    shutil.copy(run / "checkpoint" / "state.pt", trial / "checkpoint_000000" / "state.pt")
    (trial / "checkpoint_000001").mkdir()
    (trial / "checkpoint_000001" / "state.pt").write_bytes(b"garbage")
    return trial


def test_evaluate_takes_a_state_a_run_folder_and_a_trial_folder(run, tmp_path, capsys):
    reference = strict_json(evaluate(run / "model.pt", capsys)[1])
    trial = trial_folder(run, tmp_path)
    for path in (run / "checkpoint" / "state.pt", run, run / "checkpoint", trial):
        code, out, err = evaluate(path, capsys)
        assert code == 0, err
        metrics = strict_json(out)
        assert metrics["miou"] == reference["miou"], path
        if path == trial:
            assert "checkpoint_000001/state.pt" in err and "trying" in err and "checkpoint_000000" in metrics["checkpoint"]


def test_attention_maps_take_a_state_a_run_folder_and_a_trial_folder(run, tmp_path, capsys):
    trial = trial_folder(run, tmp_path)
    (trial / "checkpoint_000001" / "state.pt").unlink()  # newest must be readable here: it is the one used
    shutil.copytree(trial / "checkpoint_000000", trial / "checkpoint_000001", dirs_exist_ok=True)
    for index, path in enumerate((run / "checkpoint" / "state.pt", run, trial)):
        out = tmp_path / f"maps{index}.png"
        maps_main(["--checkpoint", str(path), "--images", "1", "--size", "16", "--out", str(out)])
        assert capsys.readouterr().out.strip() == f"wrote {out}"
        assert out.stat().st_size > 0


@pytest.mark.parametrize("args, parts", [
    (["--checkpoint", "typo.pt"], ["--checkpoint not found: typo.pt"]),
    (["--checkpoint", "."], ["holds no checkpoint"]),
    (["--checkpoint", "x", "--images", "0"], ["at least one image"]),
    (["--checkpoint", "x", "--size", "abc"], ["--size", "an integer", "'abc'"]),
])
def test_attention_maps_bad_input_is_one_line(tmp_path, capsys, monkeypatch, args, parts):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        maps_main(args)
    assert stop.value.code == 2
    one_line_error(capsys.readouterr().err, *parts)
    assert tree(tmp_path) == {}
