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
import math
from contextlib import contextmanager
from pathlib import Path

import torch

from attnfd import checkpoint as ckpt
from attnfd.config import ConfigError, TrainConfig, content_key, teacher_config
from attnfd.models import build_model
from attnfd.progress import ProgressLog


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


def teacher_label(config: TrainConfig) -> str:
    return f"teacher {config.backbone} on {config.dataset}"


def prepare_teacher(student: TrainConfig, quiet: bool = False) -> Path:
    """The path of the teacher's model file, training the teacher first if no run has.

    Unless ``quiet``, it says where the teacher comes from: the cache (and its val mIoU) or
    a training run now, with its epochs, an early time estimate and a line per epoch."""
    if student.teacher_checkpoint:
        return Path(student.teacher_checkpoint)
    from attnfd.trainer import fit

    folder, config = teacher_dir(student)
    model_file = folder / ckpt.MODEL_FILE
    log = ProgressLog(teacher_label(config))
    with _locked(folder.with_suffix(".lock")):
        if model_file.is_file():
            if not quiet:
                log.say(f"found in the cache at {folder} (val mIoU {saved_miou(model_file):.4f})")
            return model_file
        state = folder / "checkpoint" / ckpt.STATE_FILE
        resume = str(state) if state.is_file() else None
        if not quiet:
            how = "continuing its interrupted training" if resume else "not in the cache, training it once now"
            log.say(f"{how}: {config.epochs} epochs of {config.train_size} images; it is cached in {folder} "
                    "and reused by every later run that needs it")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=1, default=str))
        fit(dataclasses.replace(config, out_dir=str(folder), resume=resume), progress=None if quiet else log)
        if not quiet:
            log.say(f"trained, val mIoU {saved_miou(model_file):.4f}")
    return model_file


def saved_miou(model_file: str | Path) -> float:
    """The last evaluated val mIoU in a model file's history."""
    history = ckpt.load(model_file).get("history") or []
    scores = [row["miou"] for row in history if math.isfinite(row.get("miou", math.nan))]
    return scores[-1] if scores else math.nan


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, TrainConfig]:
    """A trained model and its config from a ``model.pt`` written by ``fit``."""
    state = ckpt.load(path)
    if "model" not in state or "config" not in state:
        raise ConfigError(f"{path} is not a model file written by attnfd")
    config = TrainConfig.from_dict({**state["config"], "resume": None, "backbone_weights": None, "teacher_checkpoint": None})
    model = build_model(config)
    model.load_state_dict(state["model"])
    return model.to(device), config
