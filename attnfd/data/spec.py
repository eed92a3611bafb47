"""A data set as the rest of the system sees it: one ``DatasetSpec``, declared beside its
reader and listed in ``attnfd.data.registry``.

Everything keyed by a data set's name reads it from here: the training config (the recipe
that fills unset fields), the command line (the names it offers, ``--download``), the
trainer and the study (the builder, the checker's layout, the class names), the checkpoint
converter (the class count).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    classes: tuple[str, ...]
    # one RGB colour per class, for label pictures
    palette: tuple[tuple[int, int, int], ...]
    # TrainConfig values the data set's recipe gives the fields a caller leaves unset
    preset: Mapping[str, Any]
    # where the recipe comes from (paper, script, config), for the README and for readers of the code
    recipe_source: str
    # (config, split) -> Dataset of (normalised CHW float image, HW int64 labels, 255 ignored)
    # carrying ``classes`` and ``palette``; None: the layout's files (attnfd.data.build_dataset)
    build: Callable[..., Any] | None = None
    # the on-disk layout (attnfd.data.layout) the builder reads and ``attnfd data check`` walks;
    # None for a generated data set, which reads no files
    layout: Any = None
    # root -> None: fetch the release into the folder; None where no public URL is known
    download: Callable[[Path], None] | None = None
    # where no download is offered: how to get the data
    how_to_get: str = ""

    def __post_init__(self) -> None:
        if len(self.palette) != len(self.classes):
            raise ValueError(f"{self.name}: {len(self.palette)} colours for {len(self.classes)} classes")
        if self.layout is not None and tuple(self.layout.classes) != tuple(self.classes):
            raise ValueError(f"{self.name}: the layout's classes differ from the spec's")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def reads_files(self) -> bool:
        return self.layout is not None
