"""The one Dataset class of the on-disk data sets: a layout's pairs (``attnfd.data.layout``),
read, mapped to train ids and augmented."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2.functional import pil_to_tensor

from attnfd.data.layout import SplitIndex
from attnfd.data.transforms import eval_transform, train_transform
from attnfd.errors import ConfigError


def read_image(path: Path) -> torch.Tensor:
    """A 3xHxW uint8 RGB tensor; grayscale and CMYK JPEGs are converted.

    (PIL, not ``torchvision.io``: torchvision 0.29 deprecates its decoders.)
    """
    with Image.open(path) as image:
        return pil_to_tensor(image.convert("RGB"))


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
