"""What an on-disk data set's layout is made of: a split is a list of (image, label) file pairs.

A layout (``attnfd.data.voc``, ``attnfd.data.cityscapes``, ...) is an object with ``name``,
``classes``, ``palette``, ``splits`` (the release's splits; the trainer reads train and val),
``expected_counts`` (split kind -> number in the official release), ``label_values`` (the
raw label values allowed, in words), ``index(root, split) -> SplitIndex``,
``read_raw_label(sample) -> HxW uint8 array``, ``bad_label_values(values) -> values outside
the layout's label set`` and ``to_train_ids(raw) -> HxW uint8`` (classes 0..n-1, 255
ignored). ``index`` raises ``ConfigError`` naming the path when a folder or split file is
missing, and lists pairs with a missing half in ``SplitIndex.missing`` so the checker can
report them all. ``IndexPngLabels`` and ``pair_by_stem`` are the parts most layouts share.

This module reads files with numpy and PIL only: the data set registry imports every layout,
and the config resolves a data set's recipe from it before anything imports torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from attnfd.errors import ConfigError
from attnfd.names import IGNORE_INDEX


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


def existing_root(dataset: str, root) -> Path:
    """``root`` as a Path, or the one line that says the data set's root is not there."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{dataset}: data root not found: {root}")
    return root


def stems(folder: Path, suffix: str) -> dict[str, Path]:
    """File name without ``suffix`` -> path, for the files of ``folder`` ending in it."""
    return {name[: -len(suffix)]: folder / name for name in os.listdir(folder) if name.endswith(suffix)}


def pair_by_stem(dataset: str, split: str, image_dir: Path, label_dir: Path, image_suffix: str,
                 label_suffix: str) -> SplitIndex:
    """The pairs of two folders whose files share a name: ``<id><image_suffix>`` with
    ``<id><label_suffix>``; a file without its partner is a missing pair."""
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise ConfigError(f"{dataset}: folder not found: {folder}")
    index = SplitIndex(split, [], kind=split)
    add_pairs(index, stems(image_dir, image_suffix), stems(label_dir, label_suffix),
              lambda sample_id: image_dir / (sample_id + image_suffix),
              lambda sample_id: label_dir / (sample_id + label_suffix))
    return index


def add_pairs(index: SplitIndex, images: dict[str, Path], labels: dict[str, Path], image_path, label_path) -> None:
    """Each id found on both sides as a sample of ``index``, in id order; an id on one side only
    as a missing pair, naming the file its partner would be (``image_path(id)``, ``label_path(id)``)."""
    for sample_id in sorted(images.keys() | labels.keys()):
        if sample_id not in labels:
            index.missing.append(f"{sample_id}: no label {label_path(sample_id)}")
        elif sample_id not in images:
            index.missing.append(f"{sample_id}: no image {image_path(sample_id)}")
        else:
            index.samples.append(Sample(sample_id, images[sample_id], labels[sample_id]))


def lookup_table(mapping: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(train ids, allowed) as 256-entry tables from raw value -> train id (``IGNORE_INDEX`` for a
    value that is allowed but ignored); a raw value the mapping does not name is not allowed."""
    train_ids = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    allowed = np.zeros(256, dtype=bool)
    for raw, train_id in mapping.items():
        train_ids[raw] = train_id
        allowed[raw] = True
    return train_ids, allowed


class IndexPngLabels:
    """Labels that are index PNGs, mapped to train ids by two tables (``lookup_table``):
    ``train_id_table`` and ``allowed_table``, set by the layout."""

    train_id_table: np.ndarray
    allowed_table: np.ndarray

    def read_raw_label(self, sample: Sample) -> np.ndarray:
        return read_index_png(sample.label)

    def bad_label_values(self, values: np.ndarray) -> np.ndarray:
        return values[~self.allowed_table[values]]

    def to_train_ids(self, raw: np.ndarray) -> np.ndarray:
        return self.train_id_table[raw]
