import subprocess
import sys

import pytest

from attnfd.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "attnfd.cli", *args], capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("command, flag", [(["train"], "--distill"), (["evaluate"], "--checkpoint")])
def test_help(command, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: attnfd {command[0]}" in out and flag in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--backbone", "resnet7"], "unknown backbone 'resnet7'"),
        (["train", "--distill", "attnfd", "--layers", ","], "layers must name at least one"),
        (["train", "--distill", "attnfd", "--alpha", "-1"], "alpha must be >= 0"),
        (["train", "--distill", "magic"], "unknown distillation method 'magic'"),
        (["train", "--resume", "/nonexistent/checkpoint"], "resume checkpoint not found"),
        (["evaluate", "--checkpoint", "/nonexistent/model.pt"], "checkpoint not found"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("attnfd: error:") and message in err


def test_train_then_evaluate_from_the_command_line(tiny, tmp_path):
    args = ["train", "--role", "student", "--distill", "attnfd"]
    for key, value in tiny.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    args += ["--epochs", "1"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    # without a terminal: one plain line per epoch, then the summary with the teacher's score
    assert "student resnet18 on shapes + attnfd: epoch 1/1, loss" in result.stdout
    assert "final val mIoU" in result.stdout and "teacher resnet18: val mIoU" in result.stdout
    assert "model written to" in result.stdout
    result = run_cli("evaluate", "--checkpoint", f"{tiny['out_dir']}/model.pt")
    assert result.returncode == 0, result.stderr
    assert '"miou"' in result.stdout and '"dataset": "shapes"' in result.stdout
