"""Every data set the system knows, by name: one ``DatasetSpec`` per data set, each declared
beside its reader. A new data set is its reader module with its ``SPEC``, named here.

Imports no torch: the training config resolves a data set's recipe from here while it checks
a command's arguments, before anything heavy is loaded.
"""

from __future__ import annotations

from attnfd.data import ade20k, camvid, cityscapes, coco_stuff164k, pascal_context59, shapes_spec, voc
from attnfd.data.spec import DatasetSpec
from attnfd.errors import ConfigError

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    shapes_spec.SPEC, voc.SPEC, cityscapes.SPEC, camvid.SPEC, ade20k.SPEC, coco_stuff164k.SPEC, pascal_context59.SPEC,
)}


def dataset_spec(name: str) -> DatasetSpec:
    spec = DATASETS.get(name)
    if spec is None:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return spec


def file_dataset_names() -> tuple[str, ...]:
    """The data sets read from disk (the ones ``attnfd data check`` walks)."""
    return tuple(name for name, spec in DATASETS.items() if spec.reads_files)
