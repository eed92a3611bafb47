"""What an on-disk data set's layout is made of: a split is a list of (image, label) file pairs.

A layout (``attnfd.data.voc``, ``attnfd.data.cityscapes``, ...) is an object with ``name``,
``classes``, ``palette``, ``expected_counts`` (split kind -> number in the official
release), ``label_values`` (the raw label values allowed, in words),
``index(root, split) -> SplitIndex``,
``read_raw_label(sample) -> HxW uint8 array``, ``bad_label_values(values) -> values outside
the layout's label set`` and ``to_train_ids(raw) -> HxW uint8`` (classes 0..n-1, 255
ignored). ``index`` raises ``ConfigError`` naming the path when a folder or split file is
missing, and lists pairs with a missing half in ``SplitIndex.missing`` so the checker can
report them all.

This module reads files with numpy and PIL only: the data set registry imports every layout,
and the config resolves a data set's recipe from it before anything imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


class LabelFormatError(ValueError):
    """A label file that is not a map of class indices (e.g. a colour-coded RGB picture)."""


@dataclass(frozen=True)
class Sample:
    id: str
    image: Path
    label: Path


@dataclass
class SplitIndex:
    split: str
    samples: list[Sample]
    # "<id>: no image <path>" / "<id>: no label <path>" for listed pairs with a missing half
    missing: list[str] = field(default_factory=list)
    # facts worth a line in the report (e.g. "train_aug from SBD at ...")
    notes: list[str] = field(default_factory=list)
    # which list the split is, for the expected count ("train" or "train_aug")
    kind: str = ""


def read_index_png(path: Path) -> np.ndarray:
    """The class indices of a palette or 8-bit grayscale PNG."""
    with Image.open(path) as image:
        if image.mode not in ("P", "L"):
            raise LabelFormatError(
                f"{path}: label PNG has mode {image.mode}, expected class indices (palette 'P' or grayscale 'L')"
            )
        return np.array(image, dtype=np.uint8)
