"""What the on-disk data sets share: a split is a list of (image, label) file pairs, found
by a layout-specific ``index``, read by one Dataset class.

A layout (``attnfd.data.voc``, ``attnfd.data.cityscapes``) is an object with ``name``,
``classes``, ``palette``, ``expected_counts`` (split kind -> number in the official
release), ``label_values`` (the raw label values allowed, in words),
``index(root, split) -> SplitIndex``, ``read_raw_label(sample) -> HxW uint8 array``,
``bad_label_values(values) -> values outside the layout's label set`` and
``to_train_ids(raw) -> HxW uint8`` (classes 0..n-1, 255 ignored). ``index`` raises
``ConfigError`` naming the path when a folder or split file is missing, and lists pairs with
a missing half in ``SplitIndex.missing`` so the checker can report them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2.functional import pil_to_tensor

from attnfd.config import ConfigError
from attnfd.data.transforms import eval_transform, train_transform


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


def read_image(path: Path) -> torch.Tensor:
    """A 3xHxW uint8 RGB tensor; grayscale and CMYK JPEGs are converted.

    (PIL, not ``torchvision.io``: torchvision 0.29 deprecates its decoders.)
    """
    with Image.open(path) as image:
        return pil_to_tensor(image.convert("RGB"))


def read_index_png(path: Path) -> np.ndarray:
    """The class indices of a palette or 8-bit grayscale PNG."""
    with Image.open(path) as image:
        if image.mode not in ("P", "L"):
            raise LabelFormatError(
                f"{path}: label PNG has mode {image.mode}, expected class indices (palette 'P' or grayscale 'L')"
            )
        return np.array(image, dtype=np.uint8)


class SegmentationFiles(Dataset):
    """(normalised CHW float image, HW int64 labels with 255 ignored) from a layout's pairs.

    ``train`` applies the paper's augmentation with ``image_size`` as the crop; otherwise
    the image keeps its original size. ``limit`` keeps the first that many pairs.
    """

    # validation images differ in size, so evaluation batches hold one image each
    variable_size = True

    def __init__(self, layout, root: str | Path, split: str, image_size=None, train: bool = False,
                 limit: int | None = None, index: SplitIndex | None = None):
        self.layout, self.root, self.split = layout, Path(root), split
        index = index or layout.index(self.root, split)
        if index.missing:
            raise ConfigError(
                f"{layout.name} {split} at {self.root}: {len(index.missing)} listed pair(s) miss a file, "
                f"e.g. {index.missing[0]}; run `attnfd data check --dataset {layout.name} --root {self.root}`"
            )
        self.samples = index.samples[:limit] if limit else index.samples
        if not self.samples:
            raise ConfigError(f"{layout.name} {split} at {self.root} has no images")
        self.classes, self.palette = layout.classes, layout.palette
        self.num_classes = len(layout.classes)
        if train and image_size is None:
            raise ValueError("a training split needs image_size (the crop)")
        self.transform = train_transform(image_size) if train else eval_transform()

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        """The pair as read from disk: uint8 image and train-id labels, before any transform."""
        sample = self.samples[index]
        image = tv_tensors.Image(read_image(sample.image))
        labels = self.layout.to_train_ids(self.layout.read_raw_label(sample))
        if tuple(image.shape[-2:]) != labels.shape:
            raise ValueError(f"{sample.id}: image {sample.image} is {tuple(image.shape[-2:])} "
                             f"but label {sample.label} is {labels.shape}")
        return image, tv_tensors.Mask(torch.from_numpy(labels))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.transform(*self.load(index))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()
