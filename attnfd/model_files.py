"""Trained models on disk: any ``model.pt`` loaded with its config, and where a distillation
run's teacher is found.

A teacher is found by content: its config is derived from the student's
(``config.teacher_config``) and hashed, and its model lives in
``<cache>/teachers/<dataset>-<backbone>-<hash>/model.pt``. This module only finds and loads
it; ``attnfd.teachers.ensure_teacher`` trains one that is missing, above the trainer, which
never trains a teacher on its own.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from attnfd import checkpoint as ckpt
from attnfd.config import TrainConfig, content_key, teacher_config
from attnfd.errors import ConfigError
from attnfd.models import build_model


def teacher_dir(student: TrainConfig) -> tuple[Path, TrainConfig]:
    """The cache folder of a distillation config's teacher, and the teacher's config."""
    config = teacher_config(student)
    folder = student.resolve_cache_dir() / "teachers" / f"{config.dataset}-{config.backbone}-{content_key(config)}"
    return folder, config


def teacher_file(student: TrainConfig) -> Path:
    """The model file a distillation config distils from: its ``teacher_checkpoint``, else its
    teacher in the cache; raises ConfigError if that has not been trained."""
    if student.teacher_checkpoint:
        return Path(student.teacher_checkpoint)
    folder, config = teacher_dir(student)
    model_file = folder / ckpt.MODEL_FILE
    if not model_file.is_file():
        raise ConfigError(f"no teacher {config.backbone} on {config.dataset} in the cache ({model_file} not found): "
                          "prepare it first with attnfd.teachers.ensure_teacher(config), as `attnfd train` and "
                          "`attnfd study` do, or give teacher_checkpoint")
    return model_file


def saved_miou(model_file: str | Path) -> float:
    """The last evaluated val mIoU in a model file's history."""
    history = ckpt.load(model_file).get("history") or []
    scores = [row["miou"] for row in history if math.isfinite(row.get("miou", math.nan))]
    return scores[-1] if scores else math.nan


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, TrainConfig]:
    """A trained model and its config from a ``model.pt`` (or a ``state.pt``) written by ``fit``."""
    state = ckpt.load(path, needs=("model", "config"))
    try:
        values = {**state["config"], "resume": None, "backbone_weights": None, "teacher_checkpoint": None}
        if values.get("dataset") == "shapes":
            values["data_root"] = None  # runs before data_root was refused for shapes stored it unused
        config = TrainConfig.from_dict(values)
    except ConfigError as err:
        raise ckpt.CheckpointError(f"{path}: its config does not load: {err}") from None
    model = build_model(config)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ckpt.CheckpointError(f"{path}: its weights do not fit the model its config describes "
                                   f"({config.backbone}, {config.head_channels} head channels): "
                                   f"{ckpt.first_line(err)}") from None
    return model.to(device), config
