"""Data sets by name. Each builder takes the resolved training config and a split and
returns a Dataset of (normalised CHW float image, HW int64 labels with 255 as ignore) that
carries ``classes`` and ``palette``."""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.data import Dataset

from attnfd.data.shapes import ShapesDataset

DATASETS: dict[str, Callable[..., Dataset]] = {}


def register_dataset(name: str):
    def wrap(builder: Callable[..., Dataset]) -> Callable[..., Dataset]:
        DATASETS[name] = builder
        return builder

    return wrap


@register_dataset("shapes")
def _shapes(config, split: str) -> Dataset:
    length = config.train_size if split == "train" else config.val_size
    return ShapesDataset(split, size=config.image_size, length=length, seed=config.data_seed)


def build_dataset(config, split: str) -> Dataset:
    if config.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {config.dataset!r}; choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[config.dataset](config, split)


def dataset_num_classes(name: str) -> int:
    return {"shapes": ShapesDataset.num_classes, "voc": 21, "cityscapes": 19}[name]
