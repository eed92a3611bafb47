"""What every hardening test asserts about a command that refused or failed."""

from __future__ import annotations

import hashlib
from pathlib import Path


def one_line_error(err: str, *parts: str, prefix: str = "error:") -> str:
    """The command said one line (no traceback) holding ``parts``; returns it."""
    text = err.strip()
    assert "Traceback" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert prefix in lines[0], text
    for part in parts:
        assert part in lines[0], (part, text)
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its content hash: a folder that nothing touched compares equal."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def truncate(path: Path) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
