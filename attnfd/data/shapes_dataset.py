"""``shapes`` as a torch Dataset: the scenes of ``attnfd.data.shapes``, normalised as the
on-disk data sets are."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from attnfd.data.shapes import CLASSES, PALETTE, SPLIT_IDS, generate
from attnfd.data.transforms import IMAGENET_MEAN as IMAGENET_MEAN_RGB
from attnfd.data.transforms import IMAGENET_STD as IMAGENET_STD_RGB

# float32 arrays of the one ImageNet mean and std: the images' exact values are what they always were
IMAGENET_MEAN = np.asarray(IMAGENET_MEAN_RGB, dtype=np.float32)
IMAGENET_STD = np.asarray(IMAGENET_STD_RGB, dtype=np.float32)


class ShapesDataset(Dataset):
    """Normalised CHW float tensors and HW int64 label maps."""

    classes = CLASSES
    palette = PALETTE
    num_classes = len(CLASSES)

    def __init__(self, split: str = "train", size: int = 48, length: int = 1024, seed: int = 0):
        # ``length`` is the size of an epoch; the training split answers any index >= 0, so
        # the trainer draws new scenes every epoch (FreshScenesSampler) and validation stays fixed
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r} for shapes; use train or val")
        if size < 32 or length < 1:
            raise ValueError(f"shapes needs image size >= 32 and at least one image (got {size}, {length})")
        self.split, self.size, self.length, self.seed = split, size, length, seed
        self.unlimited = split == "train"

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index < 0 or (index >= self.length and not self.unlimited):
            raise IndexError(index)
        image, label = generate(self.seed, self.split, index, self.size)
        image = (image - IMAGENET_MEAN) / IMAGENET_STD
        return torch.from_numpy(image.transpose(2, 0, 1).copy()), torch.from_numpy(label.astype(np.int64))
