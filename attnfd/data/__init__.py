"""Data sets by name (``attnfd.data.registry``). Each builder takes the resolved training
config and a split and returns a Dataset of (normalised CHW float image, HW int64 labels with
255 as ignore) that carries ``classes`` and ``palette``.

Importing this package loads no torch (the readers use numpy and PIL); the Dataset classes
are imported when a data set is built.
"""

from __future__ import annotations

import warnings

from attnfd.data.cityscapes import CITYSCAPES
from attnfd.data.registry import DATASETS, dataset_spec, file_dataset_names
from attnfd.data.roots import resolve_data_root
from attnfd.data.voc import VOC
from attnfd.errors import ConfigError

__all__ = ["CITYSCAPES", "DATASETS", "VOC", "build_dataset", "check_data", "dataset_class_names",
           "dataset_spec", "file_dataset_names", "resolve_data_root"]


def build_dataset(config, split: str):
    spec = dataset_spec(config.dataset)
    return (spec.build or _layout_files)(config, split)


def _layout_files(config, split: str):
    """The pairs of the data set's layout under its data root."""
    from attnfd.data.folder import SegmentationFiles

    layout = dataset_spec(config.dataset).layout
    limit = config.train_size if split == "train" else config.val_size
    return SegmentationFiles(layout, resolve_data_root(config.dataset, config.data_root), split,
                             image_size=config.image_size, train=split == "train", limit=limit)


def dataset_class_names(name: str) -> tuple[str, ...]:
    return dataset_spec(name).classes


def check_data(config) -> None:
    """The cheap part of ``attnfd data check`` (folders, split files, pairs, counts), so a wrong
    data root fails in seconds with the path in the message. A count other than the official
    release's is a warning: a subset may be on purpose."""
    from attnfd.data.check import TRAINING_SPLITS, quick_check

    layout = dataset_spec(config.dataset).layout
    if layout is None:
        return
    report = quick_check(layout, resolve_data_root(config.dataset, config.data_root), partial=True,
                         splits=TRAINING_SPLITS)
    if not report.ok:
        raise ConfigError(report.one_line())
    for message in report.warnings:
        warnings.warn(f"{config.dataset}: {message}", stacklevel=2)
