"""Teachers found by content: trained once per architecture, data set and recipe, then reused.

``ensure_teacher`` is called above the trainer, by whoever starts a distillation run (``attnfd
train``, the study driver, the benches): it returns the teacher's model file, training the
teacher with ``fit`` first if no run has. The trainer itself only loads a teacher
(``attnfd.model_files.teacher_file``). The cache folder is named by the teacher's content
(``model_files.teacher_dir``); concurrent runs wait on its lock for the one that trains it, a
teacher whose training was interrupted resumes from its own checkpoint, and a cached teacher
whose sha256 no longer matches is moved aside, named on stderr, and trained again.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from attnfd import checkpoint as ckpt
from attnfd.cached_files import damage, locked, move_aside, write_checksum
from attnfd.config import TrainConfig
from attnfd.model_files import saved_miou, teacher_dir
from attnfd.progress import ProgressLog
from attnfd.trainer import fit


def teacher_label(config: TrainConfig) -> str:
    return f"teacher {config.backbone} on {config.dataset}"


def ensure_teacher(student: TrainConfig, quiet: bool = False) -> Path:
    """The path of the teacher's model file, training the teacher first if no run has.

    Unless ``quiet``, it says where the teacher comes from: the cache (and its val mIoU) or
    a training run now, with its epochs, an early time estimate and a line per epoch."""
    if student.teacher_checkpoint:
        return Path(student.teacher_checkpoint)
    folder, config = teacher_dir(student)
    model_file = folder / ckpt.MODEL_FILE
    log = ProgressLog(teacher_label(config))
    with locked(folder.with_suffix(".lock")):
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
