"""Teachers found by content: trained once per architecture, data set and recipe, then reused.

A distillation run asks ``prepare_teacher`` for its teacher. The teacher's config is derived
from the student's (``config.teacher_config``) and hashed; the model lives in
``<cache>/teachers/<dataset>-<backbone>-<hash>/model.pt``. A file lock makes concurrent runs
on one machine (or on a shared file system) wait for the one that trains it, and a teacher
whose training was interrupted resumes from its own checkpoint.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
from contextlib import contextmanager
from pathlib import Path

import torch

from attnfd import checkpoint as ckpt
from attnfd.config import ConfigError, TrainConfig, content_key, teacher_config
from attnfd.models import build_model


def teacher_dir(student: TrainConfig) -> tuple[Path, TrainConfig]:
    config = teacher_config(student)
    folder = student.resolve_cache_dir() / "teachers" / f"{config.dataset}-{config.backbone}-{content_key(config)}"
    return folder, config


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_teacher(student: TrainConfig) -> Path:
    """The path of the teacher's model file, training the teacher first if no run has."""
    if student.teacher_checkpoint:
        return Path(student.teacher_checkpoint)
    from attnfd.trainer import fit

    folder, config = teacher_dir(student)
    model_file = folder / ckpt.MODEL_FILE
    with _locked(folder.with_suffix(".lock")):
        if not model_file.is_file():
            state = folder / "checkpoint" / ckpt.STATE_FILE
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=1, default=str))
            fit(dataclasses.replace(config, out_dir=str(folder), resume=str(state) if state.is_file() else None))
    return model_file


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, TrainConfig]:
    """A trained model and its config from a ``model.pt`` written by ``fit``."""
    state = ckpt.load(path)
    if "model" not in state or "config" not in state:
        raise ConfigError(f"{path} is not a model file written by attnfd")
    config = TrainConfig.from_dict({**state["config"], "resume": None, "backbone_weights": None, "teacher_checkpoint": None})
    model = build_model(config)
    model.load_state_dict(state["model"])
    return model.to(device), config
