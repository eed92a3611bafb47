"""The paper's augmentation (section 4.2) on torchvision.transforms.v2.

Training: random scale 0.5-2.0 of the original size, horizontal flip, random crop padded
with the mean colour (image) and 255 (labels), ImageNet normalisation. Validation: the
original image, normalised. The image is a ``tv_tensors.Image`` and the labels a
``tv_tensors.Mask``, so every geometric step moves both together and masks are resized
with nearest interpolation (v2 picks it for ``Mask``).
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2._utils import query_size

from attnfd.names import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# the padding colour of a uint8 image: after normalisation it is zero, i.e. "no signal"
MEAN_COLOUR = tuple(round(255 * m) for m in IMAGENET_MEAN)


class RandomScale(v2.Transform):
    """Resize by a factor drawn uniformly from [low, high] of the input's own size.

    (``v2.RandomResize`` and ``v2.ScaleJitter`` scale towards a fixed target size instead.)
    """

    def __init__(self, low: float = 0.5, high: float = 2.0):
        super().__init__()
        if not 0 < low <= high:
            raise ValueError(f"RandomScale needs 0 < low <= high, got {low}, {high}")
        self.low, self.high = low, high

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = query_size(flat_inputs)
        scale = float(torch.empty(()).uniform_(self.low, self.high))
        return {"size": [max(1, round(height * scale)), max(1, round(width * scale))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, params["size"], antialias=True)


def crop_size(image_size) -> tuple[int, int]:
    """The config's ``image_size`` (an int or an (h, w) pair) as (h, w)."""
    if isinstance(image_size, int):
        return image_size, image_size
    height, width = image_size
    return int(height), int(width)


def train_transform(image_size, scale: tuple[float, float] = (0.5, 2.0)) -> v2.Compose:
    return v2.Compose([
        RandomScale(*scale),
        v2.RandomHorizontalFlip(),
        v2.RandomCrop(crop_size(image_size), pad_if_needed=True,
                      fill={tv_tensors.Image: MEAN_COLOUR, tv_tensors.Mask: IGNORE_INDEX}),
        # a plain dtype converts images only; masks keep their integer labels
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def eval_transform() -> v2.Compose:
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def denormalise(image: torch.Tensor) -> torch.Tensor:
    """A normalised CHW float image back to [0, 1] RGB (for plots and checks)."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return image * std + mean
