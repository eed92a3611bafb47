"""Data sets by name. Each builder takes the resolved training config and a split and
returns a Dataset of (normalised CHW float image, HW int64 labels with 255 as ignore) that
carries ``classes`` and ``palette``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from attnfd.config import ConfigError
from attnfd.data.cityscapes import CITYSCAPES
from attnfd.data.shapes import ShapesDataset
from attnfd.data.voc import VOC

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


# data sets read from disk: name -> layout (see attnfd.data.folder)
FILE_DATASETS = {"voc": VOC, "cityscapes": CITYSCAPES}


def dataset_class_names(name: str) -> tuple[str, ...]:
    if name == "shapes":
        return ShapesDataset.classes
    return FILE_DATASETS[name].classes


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


def check_data(config) -> None:
    """The cheap part of ``attnfd data check`` (folders, split files, pairs, counts), so a wrong
    data root fails in seconds with the path in the message. A count other than the official
    release's is a warning: a subset may be on purpose."""
    from attnfd.data.check import quick_check

    layout = FILE_DATASETS.get(config.dataset)
    if layout is None:
        return
    report = quick_check(layout, resolve_data_root(config.dataset, config.data_root), partial=True)
    if not report.ok:
        raise ConfigError(report.one_line())
    for message in report.warnings:
        warnings.warn(f"{config.dataset}: {message}", stacklevel=2)


def _file_dataset(config, split: str) -> Dataset:
    from attnfd.data.folder import SegmentationFiles

    limit = config.train_size if split == "train" else config.val_size
    layout, root = FILE_DATASETS[config.dataset], resolve_data_root(config.dataset, config.data_root)
    index = None
    if config.dataset == "voc" and split == "train" and getattr(config, "voc_train_split", "train_aug") == "train":
        # the official AttnFD code trains on VOC train alone (no SBD)
        index = layout.index(root, "train", use_sbd=False)
    return SegmentationFiles(layout, root, split, image_size=config.image_size, train=split == "train", limit=limit,
                             index=index)


register_dataset("voc")(_file_dataset)
register_dataset("cityscapes")(_file_dataset)
