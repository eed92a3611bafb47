"""Files of the teacher cache kept whole while several runs share them.

A file lock makes concurrent runs on one machine (or on a shared file system) take turns; a
sha256 stored beside a model file tells a damaged copy (a truncated write, a full disk), which
is moved aside, kept for whoever wants to look, rather than deleted.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from contextlib import contextmanager
from pathlib import Path

from attnfd import checkpoint as ckpt

CHECKSUM_SUFFIX = ".sha256"


@contextmanager
def locked(path: Path):
    """Hold an exclusive lock on the file ``path`` (made if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
