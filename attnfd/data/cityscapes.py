"""Cityscapes (fine annotations), evaluated on its 19 train classes.

Layout under the data root, as the official archives (leftImg8bit_trainvaltest.zip,
gtFine_trainvaltest.zip) extract::

    leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

The labelIds PNGs hold the 34 label ids (0-33); the 19 evaluated classes are mapped to train
ids 0-18 and every other id to 255 (ignored), as cityscapesScripts' ``labels.py`` does.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from attnfd.data.layout import Sample, SplitIndex, add_pairs, existing_root, read_index_png
from attnfd.data.spec import DatasetSpec
from attnfd.errors import ConfigError

# (label id, train class name, colour) for the 19 evaluated classes, in train-id order
TRAIN_CLASSES = (
    (7, "road", (128, 64, 128)), (8, "sidewalk", (244, 35, 232)), (11, "building", (70, 70, 70)),
    (12, "wall", (102, 102, 156)), (13, "fence", (190, 153, 153)), (17, "pole", (153, 153, 153)),
    (19, "traffic light", (250, 170, 30)), (20, "traffic sign", (220, 220, 0)), (21, "vegetation", (107, 142, 35)),
    (22, "terrain", (152, 251, 152)), (23, "sky", (70, 130, 180)), (24, "person", (220, 20, 60)),
    (25, "rider", (255, 0, 0)), (26, "car", (0, 0, 142)), (27, "truck", (0, 0, 70)), (28, "bus", (0, 60, 100)),
    (31, "train", (0, 80, 100)), (32, "motorcycle", (0, 0, 230)), (33, "bicycle", (119, 11, 32)),
)
CLASSES = tuple(name for _, name, _ in TRAIN_CLASSES)
PALETTE = tuple(colour for _, _, colour in TRAIN_CLASSES)
NUM_LABEL_IDS = 34
LABEL_TO_TRAIN = np.full(256, 255, dtype=np.uint8)
for _train_id, (_label_id, _, _) in enumerate(TRAIN_CLASSES):
    LABEL_TO_TRAIN[_label_id] = _train_id
EXPECTED_COUNTS = {"train": 2975, "val": 500}
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"


def _by_prefix(folder: Path, suffix: str) -> dict[str, Path]:
    return {name[: -len(suffix)]: folder / name for name in os.listdir(folder) if name.endswith(suffix)}


class CityscapesLayout:
    name = "cityscapes"
    classes = CLASSES
    palette = PALETTE
    splits = ("train", "val")
    expected_counts = EXPECTED_COUNTS
    label_values = "label ids 0-33"

    def index(self, root: Path, split: str) -> SplitIndex:
        if split not in EXPECTED_COUNTS:
            raise ConfigError(f"cityscapes: unknown split {split!r}; use train or val")
        root = existing_root("cityscapes", root)
        image_root, label_root = root / "leftImg8bit" / split, root / "gtFine" / split
        for folder in (image_root, label_root):
            if not folder.is_dir():
                raise ConfigError(f"cityscapes: folder not found: {folder}")
        index = SplitIndex(split, [], kind=split)
        cities = sorted({p.name for p in image_root.iterdir() if p.is_dir()}
                        | {p.name for p in label_root.iterdir() if p.is_dir()})
        for city in cities:
            images = _by_prefix(image_root / city, IMAGE_SUFFIX) if (image_root / city).is_dir() else {}
            labels = _by_prefix(label_root / city, LABEL_SUFFIX) if (label_root / city).is_dir() else {}
            add_pairs(index, images, labels, lambda prefix, city=city: image_root / city / (prefix + IMAGE_SUFFIX),
                      lambda prefix, city=city: label_root / city / (prefix + LABEL_SUFFIX))
        return index

    def read_raw_label(self, sample: Sample) -> np.ndarray:
        return read_index_png(sample.label)

    def bad_label_values(self, values: np.ndarray) -> np.ndarray:
        return values[values >= NUM_LABEL_IDS]

    def to_train_ids(self, raw: np.ndarray) -> np.ndarray:
        return LABEL_TO_TRAIN[raw]


CITYSCAPES = CityscapesLayout()

SPEC = DatasetSpec(
    name="cityscapes", classes=CLASSES, palette=PALETTE, layout=CITYSCAPES,
    # the paper's recipe (section 4.2) and the official code's weight decay
    preset={
        "image_size": (512, 1024), "output_stride": 16, "head_channels": 256, "aspp_rates": (6, 12, 18),
        "epochs": 50, "teacher_backbone": "resnet101", "teacher_epochs": 50, "batch_size": 4, "lr": 0.01,
        "weight_decay": 5e-4, "alpha": 10.0, "workers": 4, "head_lr_mult": 10.0, "lr_schedule": "cosine",
    },
    recipe_source="AttnFD paper, section 4.2; weight decay from the official code",
    how_to_get="Cityscapes needs an account on its website",
)
