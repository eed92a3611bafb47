"""Paths a command is given, checked before anything heavy is imported.

A checkpoint argument may be anything the project writes: a ``model.pt``, a ``state.pt``, a
run folder (``<out_dir>`` with ``model.pt`` and ``checkpoint/state.pt``), a checkpoint folder,
or a study trial's folder (``trial_<id>/checkpoint_<N>/state.pt``, newest first). Nothing here
imports torch, so a typo is reported in a fraction of a second.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from attnfd.errors import ConfigError
from attnfd.study_contract import CHECKPOINT_PREFIX

STATE_FILE = "state.pt"
MODEL_FILE = "model.pt"
# Ray Tune's name for a trial's reported checkpoints
_TRIAL_CHECKPOINT = re.compile(re.escape(CHECKPOINT_PREFIX) + r"(\d+)$")
WHAT_A_CHECKPOINT_IS = "a model.pt, a state.pt, a run folder or a study trial's folder"


def trial_checkpoints(folder: Path) -> list[Path]:
    """A trial folder's ``checkpoint_<N>`` folders that hold a state, newest first."""
    found = []
    for child in folder.iterdir() if folder.is_dir() else ():
        match = _TRIAL_CHECKPOINT.match(child.name)
        if match and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child / STATE_FILE))
    return [path for _, path in sorted(found, reverse=True)]


def checkpoint_files(path: str | os.PathLike, want: str = "model", what: str = "checkpoint") -> list[Path]:
    """The files ``path`` stands for, best first: for ``want="model"`` (weights and config) a
    ``model.pt`` before any state; for ``want="state"`` (the whole training state: resume, the
    distiller's gates) only ``state.pt`` files. A file given by name is taken as it is."""
    if str(path).strip() == "":
        raise ConfigError(f"{what} is empty; give {WHAT_A_CHECKPOINT_IS}")
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if not path.exists():
        raise ConfigError(f"{what} not found: {path}")
    if not path.is_dir():
        raise ConfigError(f"{what} {path} is neither a file nor a folder")
    found = [path / MODEL_FILE] if want == "model" and (path / MODEL_FILE).is_file() else []
    found += [p for p in (path / STATE_FILE, path / "checkpoint" / STATE_FILE) if p.is_file()]
    found += trial_checkpoints(path)
    if not found:
        kinds = WHAT_A_CHECKPOINT_IS if want == "model" else "a state.pt, a run folder or a study trial's folder"
        raise ConfigError(f"{what} {path} holds no checkpoint; give {kinds}")
    return found


def folder_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be (or become) a folder to write into, or None if it can. Creates
    nothing: the nearest existing ancestor must be a writable folder."""
    path = Path(path).expanduser()
    if path.exists():
        if not path.is_dir():
            return f"{path} is a file, not a folder"
        return None if os.access(path, os.W_OK | os.X_OK) else f"{path} is not writable"
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{path} cannot be created: {parent} is a file"
            if not os.access(parent, os.W_OK | os.X_OK):
                return f"{path} cannot be created: {parent} is not writable"
            return None
    return None
