"""Pascal Context (Mottaghi et al., CVPR 2014) in its 59-class setting: VOC 2010's images with
whole-scene labels, the 59 most frequent classes evaluated.

Layout under the data root (the VOC2010 folder itself is accepted too)::

    VOCdevkit/VOC2010/JPEGImages/<id>.jpg                             VOC 2010 trainval
    VOCdevkit/VOC2010/SegmentationClassContext/<id>.png               0 = background, 1-59
    VOCdevkit/VOC2010/ImageSets/SegmentationContext/{train,val}.txt   (else ImageSets/Main/{train,val}.txt)

The label PNGs are the Detail API's conversion of ``trainval_merged.json`` (README, "Real
data", says how to make them): 0 is every pixel outside the 59 classes, ignored in this
setting; 1-59 are the classes, trained as 0-58. Pascal Context's splits are VOC 2010's main
train and val lists: 4,998 and 5,105 images.
"""

from __future__ import annotations

import os
from pathlib import Path

from attnfd.data.layout import IndexPngLabels, Sample, SplitIndex, existing_root, lookup_table
from attnfd.data.spec import DatasetSpec, poly_recipe
from attnfd.data.voc import PNG_PALETTE
from attnfd.errors import ConfigError
from attnfd.names import IGNORE_INDEX

CLASSES = (
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle", "building", "bus",
    "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow", "cup", "curtain", "dog", "door", "fence",
    "floor", "flower", "food", "grass", "ground", "horse", "keyboard", "light", "motorbike", "mountain", "mouse",
    "person", "plate", "platform", "pottedplant", "road", "rock", "sheep", "shelves", "sidewalk", "sign", "sky",
    "snow", "sofa", "table", "track", "train", "tree", "truck", "tvmonitor", "wall", "water", "window", "wood",
)
# VOC's colour map over the train ids
PALETTE = PNG_PALETTE[: len(CLASSES)]
BACKGROUND = 0
LABEL_FOLDER = "SegmentationClassContext"
SPLIT_FILES = {"train": "train.txt", "val": "val.txt"}
EXPECTED_COUNTS = {"train": 4998, "val": 5105}
HOW_TO_LABEL = "make it from the Detail API's trainval_merged.json (README, \"Real data\")"


def _read_list(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


class PascalContext59Layout(IndexPngLabels):
    name = "pascal_context59"
    classes = CLASSES
    palette = PALETTE
    splits = ("train", "val")
    expected_counts = EXPECTED_COUNTS
    label_values = "0-59 (0 is background, ignored)"
    # label k is class k - 1: the 59-class setting drops the background
    train_id_table, allowed_table = lookup_table({BACKGROUND: IGNORE_INDEX, **{k + 1: k for k in range(len(CLASSES))}})

    def voc_dir(self, root: Path) -> Path:
        root = existing_root("pascal_context59", root)
        for candidate in (root / "VOCdevkit" / "VOC2010", root):
            if (candidate / "JPEGImages").is_dir():
                return candidate
        raise ConfigError(f"pascal_context59: no VOCdevkit/VOC2010/JPEGImages under {root}")

    def split_file(self, voc: Path, split: str) -> Path:
        """The Context list when the conversion wrote one, else VOC 2010's main list (the same split)."""
        for folder in ("SegmentationContext", "Main"):
            path = voc / "ImageSets" / folder / SPLIT_FILES[split]
            if path.is_file():
                return path
        raise ConfigError(f"pascal_context59: split file not found: {voc / 'ImageSets' / 'SegmentationContext'}"
                          f"/{SPLIT_FILES[split]} (nor ImageSets/Main/{SPLIT_FILES[split]})")

    def index(self, root: Path, split: str) -> SplitIndex:
        if split not in SPLIT_FILES:
            raise ConfigError(f"pascal_context59: unknown split {split!r}; use train or val")
        voc = self.voc_dir(Path(root))
        labels = voc / LABEL_FOLDER
        if not labels.is_dir():
            raise ConfigError(f"pascal_context59: label folder not found: {labels}; {HOW_TO_LABEL}")
        split_file = self.split_file(voc, split)
        index = SplitIndex(split, [], kind=split)
        if split_file.parent.name == "Main":
            index.notes.append(f"{split}: ids from {split_file} (no SegmentationContext list)")
        image_names, label_names = set(os.listdir(voc / "JPEGImages")), set(os.listdir(labels))
        for sample_id in _read_list(split_file):
            image, label = voc / "JPEGImages" / f"{sample_id}.jpg", labels / f"{sample_id}.png"
            if image.name not in image_names:
                index.missing.append(f"{sample_id}: no image {image}")
            elif label.name not in label_names:
                index.missing.append(f"{sample_id}: no label {label}")
            else:
                index.samples.append(Sample(sample_id, image, label))
        return index


PASCAL_CONTEXT59 = PascalContext59Layout()


def download(root: str | Path) -> None:
    """Fetch VOC 2010 trainval (the images and the split lists) into ``root`` with torchvision;
    the 59-class labels are then made from the Detail API's annotations (README)."""
    from torchvision.datasets import VOCSegmentation

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    VOCSegmentation(str(root), year="2010", image_set="trainval", download=True)


SPEC = DatasetSpec(
    name="pascal_context59", classes=CLASSES, palette=PALETTE, layout=PASCAL_CONTEXT59, download=download,
    # mmsegmentation's DeepLabV3+ on Pascal Context 59
    # (configs/deeplabv3plus/deeplabv3plus_r101-d8_4xb4-80k_pascal-context-59-480x480.py with
    # _base_/schedules/schedule_80k.py): 480x480 crops, 4 GPUs x 4 images = batch 16, SGD lr
    # 0.004, momentum 0.9, weight decay 1e-4, poly 0.9 over 80,000 iterations = 80000 * 16 / 4998
    # = 256 epochs, one learning rate for the whole network. PFS (Shan 2019) reports on this set
    # but publishes no recipe, nor AttnFD an alpha: its VOC value, a start for a search
    preset=poly_recipe(image_size=480, epochs=256, lr=0.004),
    recipe_source="mmsegmentation: configs/deeplabv3plus/deeplabv3plus_r101-d8_4xb4-80k_pascal-context-59-480x480.py",
)
