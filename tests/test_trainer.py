import json
import math
from pathlib import Path

import pytest
import torch
from conftest import with_teacher

from attnfd.config import ConfigError, TrainConfig
from attnfd.model_files import load_model, teacher_dir
from attnfd.teachers import ensure_teacher
from attnfd.trainer import NonFiniteLossError, Run, fit


def _strip(row):
    """A row without its wall time, NaN written as a string so rows compare with ==."""
    fix = lambda v: "nan" if isinstance(v, float) and math.isnan(v) else v
    return {k: [fix(x) for x in v] if isinstance(v, list) else fix(v) for k, v in row.items() if k not in ("seconds", "shared_seconds")}


def test_report_gets_every_epoch_with_metrics_and_a_checkpoint(tiny):
    rows = []
    fit({**tiny, "role": "student"}, lambda row, ckpt: rows.append((row, Path(ckpt))))
    assert [r["epoch"] for r, _ in rows] == [1, 2]
    row, folder = rows[-1]
    assert {"miou", "pixel_acc", "per_class_iou", "loss", "loss_ce", "lr", "seconds"} <= set(row)
    assert len(row["per_class_iou"]) == 4 and 0.0 <= row["miou"] <= 1.0
    assert (folder / "state.pt").is_file()
    _, config = load_model(Path(tiny["out_dir"]) / "model.pt")
    assert config.backbone == "resnet18" and config.role == "student"


def test_seeded_runs_repeat_and_resume_continues_exactly(tiny, tmp_path):
    # a teacher in train mode draws its dropout from the teacher's and distillers' own stream,
    # which the checkpoint must carry as well as the student's generators
    config = {**tiny, "role": "student", "distill": "attnfd", "epochs": 3, "teacher_mode": "train"}
    full = []
    fit(with_teacher(config), lambda row, _: full.append(_strip(row)))

    # the same run, stopped after its first epoch by a failing report callback
    first = {**config, "out_dir": str(tmp_path / "interrupted")}

    def stop(row, _):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(first, stop)
    resumed = []
    fit({**first, "resume": str(tmp_path / "interrupted" / "checkpoint")}, lambda row, _: resumed.append(_strip(row)))
    assert [r["epoch"] for r in resumed] == [2, 3]
    assert resumed == full[1:]

    again = []
    fit({**config, "out_dir": str(tmp_path / "again")}, lambda row, _: again.append(_strip(row)))
    assert again == full


def test_the_trainer_loads_a_teacher_and_never_trains_one(tiny, tmp_path):
    cache = tmp_path / "empty-cache"
    with pytest.raises(ConfigError, match=r"no teacher resnet18 on shapes in the cache .*ensure_teacher"):
        fit({**tiny, "cache_dir": str(cache), "distill": "attnfd", "epochs": 1})
    assert not (cache / "teachers").exists() and not Path(tiny["out_dir"]).exists()


def test_distillation_trains_one_teacher_and_reuses_it(tiny, tmp_path):
    tiny = {**tiny, "cache_dir": str(tmp_path / "own-cache")}
    first = {**tiny, "distill": "attnfd", "epochs": 1, "seed": 1}
    model_file = ensure_teacher(TrainConfig.from_dict(first), quiet=True)
    fit(first)
    folder, _ = teacher_dir(TrainConfig.from_dict({**tiny, "distill": "attnfd"}))
    assert model_file == folder / "model.pt"
    stamp = model_file.stat().st_mtime_ns
    second = {**tiny, "distill": "attnfd", "epochs": 1, "seed": 2, "out_dir": str(tmp_path / "second"),
              "layers": "decoder", "alpha": 3.0}
    assert ensure_teacher(TrainConfig.from_dict(second), quiet=True) == model_file
    fit(second)
    assert model_file.stat().st_mtime_ns == stamp
    assert len(list((Path(tiny["cache_dir"]) / "teachers").glob("*/model.pt"))) == 1
    teacher, config = load_model(model_file)
    assert config.role == "teacher" and config.tap_gates and teacher.gates is not None
    assert json.loads((folder / "config.json").read_text())["backbone"] == "resnet18"
    # a different teacher recipe is a different teacher
    other, _ = teacher_dir(TrainConfig.from_dict({**tiny, "distill": "attnfd", "teacher_epochs": 2}))
    assert other != folder
    # the teacher-gate options share one teacher
    same, _ = teacher_dir(TrainConfig.from_dict({**tiny, "distill": "attnfd", "teacher_gate": "untrained"}))
    assert same == folder


def test_teacher_is_frozen_during_distillation(tiny):
    # the teacher in memory, after an epoch of steps: its file on disk is never rewritten by a student run
    run = Run(with_teacher(TrainConfig.from_dict({**tiny, "distill": "attnfd", "epochs": 1})))
    teacher = {k: v.clone() for k, v in run.teacher.state_dict().items()}  # weights and BN statistics
    connectors = {k: v.clone() for k, v in run.distillers.state_dict().items() if ".connectors." in k}
    run.train_epoch()
    assert connectors and all(not torch.equal(v, run.distillers.state_dict()[k]) for k, v in connectors.items()
                              if k.endswith("weight"))
    assert all(torch.equal(v, run.teacher.state_dict()[k]) for k, v in teacher.items())


def test_non_finite_loss_names_epoch_and_step(tiny):
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step \d+"):
        fit({**tiny, "lr": 1e12, "epochs": 2, "train_size": 16})


def test_plain_student_metrics_are_finite(tiny):
    row = fit({**tiny, "epochs": 1, "backbone": "mobilenet_v2"})
    assert math.isfinite(row["miou"]) and "alpha" not in row


def test_head_learning_rate_multiple_follows_the_recipe(tiny):
    from attnfd.models import build_model
    from attnfd.trainer import _optimizer

    # the paper's 10x head suits a pretrained backbone; from scratch on shapes the head and
    # backbone learn at one rate, and an explicit value wins over either recipe
    assert TrainConfig.from_dict({"dataset": "voc"}).head_lr_mult == 10.0
    assert TrainConfig.from_dict({"dataset": "shapes"}).head_lr_mult == 1.0
    config = TrainConfig.from_dict({**tiny, "head_lr_mult": 4.0})
    optimizer = _optimizer(config, build_model(config), torch.nn.ModuleDict())
    assert [group["lr"] for group in optimizer.param_groups] == [config.lr, pytest.approx(4 * config.lr)]
    with pytest.raises(ValueError, match="head_lr_mult must be > 0"):
        TrainConfig.from_dict({**tiny, "head_lr_mult": 0})
