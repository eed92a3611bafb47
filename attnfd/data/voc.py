"""Pascal VOC 2012 segmentation, with SBD's extra labels as the train_aug split.

Layout under the data root (torchvision's ``VOCSegmentation`` root; the VOC2012 folder itself
is accepted too)::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png          palette PNG, 255 = boundary/ignore
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt

and, optionally, SBD in one of its usual forms:

    benchmark_RELEASE/dataset/cls/<id>.mat                 the SBD archive as extracted
    SBD/cls/<id>.mat                                       torchvision's SBDataset(root/SBD)
    VOCdevkit/VOC2012/SegmentationClassAug/<id>.png        the common PNG conversion
                                                           (+ ImageSets/Segmentation/train_aug.txt)

With SBD the train split is train_aug: VOC train plus every SBD image, minus every VOC val
image (10,582 images); images VOC itself labels keep VOC's labels (they have the 255
boundaries SBD lacks). Without SBD it is VOC train (1,464).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from attnfd.data.layout import Sample, SplitIndex, existing_root, read_index_png
from attnfd.data.spec import DatasetSpec
from attnfd.errors import ConfigError

CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def _voc_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """VOC's colour map: the bits of the class index spread over R, G and B, high bits first."""
    colours = []
    for index in range(n):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return tuple(colours)


PALETTE = _voc_palette(len(CLASSES))
# the full 256-entry map, as VOC's PNGs carry it (index 255, the boundary, is (224, 224, 192))
PNG_PALETTE = _voc_palette(256)
SPLIT_FILES = {"train": "train.txt", "val": "val.txt"}
EXPECTED_COUNTS = {"train": 1464, "train_aug": 10582, "val": 1449}


def _read_list(path: Path) -> list[str]:
    """Ids from a split file; lines like "/JPEGImages/x.jpg /SegmentationClassAug/x.png" give x."""
    if not path.is_file():
        raise ConfigError(f"voc: split file not found: {path}")
    ids = []
    for line in path.read_text().splitlines():
        if line.strip():
            ids.append(Path(line.split()[0]).stem)
    return ids


def _stems(folder: Path, suffix: str) -> set[str]:
    if not folder.is_dir():
        return set()
    return {name[: -len(suffix)] for name in os.listdir(folder) if name.endswith(suffix)}


class VOCLayout:
    name = "voc"
    classes = CLASSES
    palette = PALETTE
    splits = ("train", "val")
    expected_counts = EXPECTED_COUNTS
    label_values = "0-20, or 255 for ignore"

    def voc_dir(self, root: Path) -> Path:
        root = existing_root("voc", root)
        for candidate in (root / "VOCdevkit" / "VOC2012", root):
            if (candidate / "JPEGImages").is_dir():
                return candidate
        raise ConfigError(f"voc: no VOCdevkit/VOC2012/JPEGImages under {root}")

    def sbd(self, root: Path, voc_dir: Path) -> tuple[str, Path] | None:
        """Where SBD's labels are, as ("mat" | "png", folder), or None."""
        for folder in (root / "benchmark_RELEASE" / "dataset" / "cls", root / "SBD" / "cls"):
            if folder.is_dir():
                return "mat", folder
        if (voc_dir / "SegmentationClassAug").is_dir():
            return "png", voc_dir / "SegmentationClassAug"
        return None

    def index(self, root: Path, split: str, use_sbd: bool = True) -> SplitIndex:
        """A split's pairs; train is train_aug when SBD's labels are found, unless ``use_sbd``
        is False (the 1,464 VOC train images, as the official AttnFD code trains on)."""
        if split not in SPLIT_FILES:
            raise ConfigError(f"voc: unknown split {split!r}; use train or val")
        root = Path(root)
        voc = self.voc_dir(root)
        lists = voc / "ImageSets" / "Segmentation"
        images = _stems(voc / "JPEGImages", ".jpg")
        voc_labels = voc / "SegmentationClass"
        if not voc_labels.is_dir():
            raise ConfigError(f"voc: label folder not found: {voc_labels}")
        val_ids = _read_list(lists / SPLIT_FILES["val"])
        sbd = self.sbd(root, voc) if split == "train" and use_sbd else None
        if sbd is None:
            ids = _read_list(lists / SPLIT_FILES[split])
            pairs = [(i, voc_labels / f"{i}.png") for i in ids]
            index = SplitIndex(split, [], kind=split)
        else:
            pairs, notes = self._train_aug(lists, voc_labels, val_ids, *sbd)
            index = SplitIndex(split, [], kind="train_aug", notes=notes)
        label_names = {folder: set(os.listdir(folder)) for folder in {p.parent for _, p in pairs} if folder.is_dir()}
        for sample_id, label in pairs:
            image = voc / "JPEGImages" / f"{sample_id}.jpg"
            if sample_id not in images:
                index.missing.append(f"{sample_id}: no image {image}")
            elif label.name not in label_names.get(label.parent, ()):
                index.missing.append(f"{sample_id}: no label {label}")
            else:
                index.samples.append(Sample(sample_id, image, label))
        return index

    def _train_aug(self, lists: Path, voc_labels: Path, val_ids: list[str], kind: str, folder: Path):
        train_ids = _read_list(lists / SPLIT_FILES["train"])
        voc_train = set(train_ids)
        if kind == "mat":
            extra = sorted(_stems(folder, ".mat"))
        elif (lists / "train_aug.txt").is_file():
            extra = _read_list(lists / "train_aug.txt")
        else:
            extra = sorted(_stems(folder, ".png"))
        val = set(val_ids)
        ids = list(dict.fromkeys(train_ids + extra))
        kept = [i for i in ids if i not in val]
        aug_pngs = _stems(folder, ".png") if kind == "png" else set()
        pairs = []
        for i in kept:
            if kind == "png" and i in aug_pngs:
                pairs.append((i, folder / f"{i}.png"))
            elif i in voc_train or kind == "png":
                pairs.append((i, voc_labels / f"{i}.png"))
            else:
                pairs.append((i, folder / f"{i}.mat"))
        left_out = len(ids) - len(kept)
        return pairs, [f"train is train_aug: VOC train + SBD labels from {folder}; {left_out} val image(s) left out"]

    def read_raw_label(self, sample: Sample) -> np.ndarray:
        if sample.label.suffix == ".mat":
            from scipy.io import loadmat

            try:
                mat = loadmat(sample.label, squeeze_me=True, struct_as_record=False)
                return np.asarray(mat["GTcls"].Segmentation, dtype=np.uint8)
            except (KeyError, AttributeError) as err:
                raise ValueError(f"{sample.label}: not an SBD cls file (no GTcls.Segmentation)") from err
        return read_index_png(sample.label)

    def bad_label_values(self, values: np.ndarray) -> np.ndarray:
        return values[(values >= len(CLASSES)) & (values != 255)]

    def to_train_ids(self, raw: np.ndarray) -> np.ndarray:
        return raw


VOC = VOCLayout()


def download(root: str | Path) -> None:
    """Fetch VOC 2012 trainval and SBD (for train_aug) into ``root`` with torchvision."""
    from torchvision.datasets import SBDataset, VOCSegmentation

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    VOCSegmentation(str(root), year="2012", image_set="trainval", download=True)
    if not (root / "SBD" / "cls").is_dir():
        SBDataset(str(root / "SBD"), image_set="train", mode="segmentation", download=True)


def build(config, split: str):
    from attnfd.data.folder import SegmentationFiles
    from attnfd.data.roots import resolve_data_root

    limit = config.train_size if split == "train" else config.val_size
    root = resolve_data_root(config.dataset, config.data_root)
    index = None
    if split == "train" and config.voc_train_split == "train":
        # the official AttnFD code trains on VOC train alone (no SBD)
        index = VOC.index(root, "train", use_sbd=False)
    return SegmentationFiles(VOC, root, split, image_size=config.image_size, train=split == "train", limit=limit,
                             index=index)


SPEC = DatasetSpec(
    name="voc", classes=CLASSES, palette=PALETTE, layout=VOC, build=build, download=download,
    # the paper's recipe (section 4.2) and the official code's weight decay
    preset={
        "image_size": 513, "output_stride": 16, "head_channels": 256, "aspp_rates": (6, 12, 18), "epochs": 120,
        "teacher_backbone": "resnet101", "teacher_epochs": 120, "batch_size": 6, "lr": 0.007, "weight_decay": 5e-4,
        "alpha": 1.0, "workers": 4, "head_lr_mult": 10.0, "lr_schedule": "cosine",
    },
    recipe_source="AttnFD paper, section 4.2; weight decay from the official code",
)
