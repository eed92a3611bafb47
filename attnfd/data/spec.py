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


def poly_recipe(image_size: int, epochs: int, lr: float) -> dict[str, Any]:
    """The recipe the segmentation-distillation codebases (CIRKD, mmsegmentation) share for the
    data sets AttnFD does not report: DeepLabV3+ at output stride 16 with its full heads, a
    ResNet-101 teacher trained as long as the student, batch 16, SGD with weight decay 1e-4
    under a poly schedule, one learning rate for the whole network, and AttnFD's VOC alpha as
    a start for a search. Each data set gives its crop size, its epochs and its learning rate."""
    return {
        "image_size": image_size, "output_stride": 16, "head_channels": 256, "aspp_rates": (6, 12, 18),
        "epochs": epochs, "teacher_backbone": "resnet101", "teacher_epochs": epochs, "batch_size": 16, "lr": lr,
        "weight_decay": 1e-4, "lr_schedule": "poly", "alpha": 1.0, "workers": 4, "head_lr_mult": 1.0,
    }
