"""Teachers found by content: trained once per architecture, data set and recipe, then reused.

A distillation run asks ``prepare_teacher`` for its teacher. The teacher's config is derived
from the student's (``config.teacher_config``) and hashed; the model lives in
``<cache>/teachers/<dataset>-<backbone>-<hash>/model.pt``. A file lock makes concurrent runs
on one machine (or on a shared file system) wait for the one that trains it, and a teacher
whose training was interrupted resumes from its own checkpoint. A sha256 of ``model.pt`` is
stored beside it; a cached teacher that no longer matches (a truncated copy, a full disk) is
moved aside, named on stderr, and trained again.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import math
import sys
import time
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


CHECKSUM_SUFFIX = ".sha256"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksum(model_file: Path) -> None:
    """``model.pt.sha256`` beside the file, so a later run can tell a damaged copy."""
    checksum = model_file.with_name(model_file.name + CHECKSUM_SUFFIX)
    tmp = checksum.with_name(checksum.name + ".tmp")
    tmp.write_text(_sha256(model_file) + "\n")
    tmp.replace(checksum)


def damage(model_file: Path) -> str | None:
    """Why a cached model file cannot be used (None if it can). A file cached before
    checksums were written is loaded once to check it, then gets its checksum."""
    checksum = model_file.with_name(model_file.name + CHECKSUM_SUFFIX)
    if checksum.is_file():
        return None if checksum.read_text().strip() == _sha256(model_file) else "its sha256 does not match"
    try:
        ckpt.load(model_file, needs=("model", "config"))
    except ckpt.CheckpointError as err:
        return str(err)
    write_checksum(model_file)
    return None


def move_aside(path: Path) -> Path:
    """Rename a damaged file out of the way (kept, not deleted, for whoever wants to look)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    count = 1
    while aside.exists():  # never over an earlier damaged copy
        count += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{count}")
    path.replace(aside)
    checksum = path.with_name(path.name + CHECKSUM_SUFFIX)
    if checksum.is_file():
        checksum.replace(aside.with_name(aside.name + CHECKSUM_SUFFIX))
    return aside


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
        problem = damage(model_file) if model_file.is_file() else None
        if problem:
            aside = move_aside(model_file)
            print(f"attnfd: warning: the cached teacher {model_file} is damaged ({problem}); moved it to {aside.name} "
                  "and rebuilding it (from its last checkpoint if intact, else by training it again)",
                  file=sys.stderr, flush=True)
        if model_file.is_file():
            if not quiet:
                log.say(f"found in the cache at {folder} (val mIoU {saved_miou(model_file):.4f})")
            return model_file
        state = folder / "checkpoint" / ckpt.STATE_FILE
        if state.is_file():
            try:
                ckpt.load(state)
            except ckpt.CheckpointError as err:
                aside = move_aside(state)
                print(f"attnfd: warning: {err}; moved it to {aside.name}, the teacher starts from epoch 1",
                      file=sys.stderr, flush=True)
        resume = str(state) if state.is_file() else None
        if not quiet:
            how = "continuing its interrupted training" if resume else "not in the cache, training it once now"
            log.say(f"{how}: {config.epochs} epochs of {config.train_size} images; it is cached in {folder} "
                    "and reused by every later run that needs it")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config.to_dict(), indent=1, default=str))
        fit(dataclasses.replace(config, out_dir=str(folder), resume=resume), progress=None if quiet else log)
        write_checksum(model_file)
        if not quiet:
            log.say(f"trained, val mIoU {saved_miou(model_file):.4f}")
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
