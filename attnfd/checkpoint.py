"""Checkpoints that resume a run exactly: weights, optimiser, schedulers, epoch and every RNG."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from attnfd.errors import ConfigError
from attnfd.paths import MODEL_FILE, STATE_FILE

__all__ = ["MODEL_FILE", "STATE_FILE", "CheckpointError", "atomic_save", "load"]


class CheckpointError(ConfigError):
    """A checkpoint or model file that cannot be read or does not fit; one line naming the file."""


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def atomic_save(obj, path: Path) -> None:
    """Write then rename, so a run killed mid-write leaves the previous file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def load(path: Path, needs: tuple[str, ...] = ()) -> dict:
    """A checkpoint written by ``fit`` (a folder stands for its ``state.pt``), holding ``needs``."""
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        # our own files: they hold numpy RNG state and plain config dicts
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001  (torch reports a damaged file as any of a dozen error types)
        raise CheckpointError(f"cannot read {path} (truncated or not written by attnfd): {first_line(err)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a checkpoint written by attnfd: it holds a {type(state).__name__}")
    missing = [key for key in needs if key not in state]
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint written by attnfd: it has no {', '.join(missing)}")
    return state
