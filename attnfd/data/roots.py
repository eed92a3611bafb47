"""Where an on-disk data set lives.

Its own module, below the package's ``__init__``, so that a data set's module (VOC's SBD
reader) can find its root without importing the package that imports it.
"""

from __future__ import annotations

import os
from pathlib import Path

from attnfd.errors import ConfigError


def resolve_data_root(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """The folder a file data set lives in: ``root`` if given, else ``$ATTNFD_DATA/<dataset>``."""
    if root:
        return Path(root).expanduser()
    base = os.environ.get("ATTNFD_DATA")
    if base:
        return Path(base).expanduser() / dataset
    raise ConfigError(
        f"no data root for {dataset}: pass --data-root DIR or set ATTNFD_DATA to the folder that holds {dataset}/"
    )
