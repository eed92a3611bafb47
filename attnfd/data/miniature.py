"""Miniature copies of VOC (with SBD), Cityscapes, CamVid, ADE20K, COCO-Stuff-164k and Pascal
Context in their real on-disk layouts.

Real JPEG and PNG files (palette PNGs for VOC, 8-bit label PNGs for the others, SBD ``.mat``
files), a few images of chosen (odd) sizes with ignore labels, so the readers, the checker
and the input pipeline can be exercised where the real data cannot be downloaded: in tests, in
benchmarks, or to try a setup before fetching gigabytes.

Every class is painted in its own saturated colour (``CLASS_COLOURS``; ``SCENE_COLOURS`` for
the data sets whose scenes use a few of many classes), so a label map can be recovered from
the image's colours: the test that image and labels stay aligned through the augmentation
relies on it.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from attnfd.data import ade20k, camvid, cityscapes, coco_stuff164k, pascal_context59, voc
from attnfd.names import IGNORE_INDEX

# 34 hues around the colour wheel at full saturation: far from each other and from the grey
# mean colour that pads crops
CLASS_COLOURS = np.array(
    [[round(255 * c) for c in colorsys.hsv_to_rgb((k * 11 % 34) / 34, 1.0, 1.0 if k % 2 else 0.75)] for k in range(34)],
    dtype=np.uint8,
)
DEFAULT_SIZES = ((45, 61), (53, 38), (23, 29), (64, 47))


def _scene(rng: np.random.Generator, size: tuple[int, int], classes: Sequence[int], background: int,
           objects: int = 3) -> np.ndarray:
    """An HxW map of class ids: a background and a few rectangles and ellipses on top."""
    h, w = size
    labels = np.full((h, w), background, dtype=np.uint8)
    ys, xs = np.mgrid[0:h, 0:w]
    for _ in range(objects):
        cls = int(rng.choice(classes))
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.15, 0.35) * h, rng.uniform(0.15, 0.35) * w
        if rng.random() < 0.5:
            inside = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1
        else:
            inside = (np.abs(ys - cy) <= ry) & (np.abs(xs - cx) <= rx)
        labels[inside] = cls
    return labels


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels with a differently labelled 4-neighbour (VOC marks them 255)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:-1] |= labels[1:] != labels[:-1]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    return edge


def paint(labels: np.ndarray, rng: np.random.Generator, colours: np.ndarray = CLASS_COLOURS) -> np.ndarray:
    """An HxWx3 uint8 picture: each class in its colour, with a little noise."""
    image = colours[labels].astype(np.int16) + rng.integers(-6, 7, size=labels.shape + (3,))
    return np.clip(image, 0, 255).astype(np.uint8)


def save_palette_png(labels: np.ndarray, path: Path) -> None:
    image = Image.fromarray(labels)  # an 8-bit "L" image; putpalette makes it "P"
    image.putpalette([c for colour in voc.PNG_PALETTE for c in colour])
    image.save(path)


def _save_jpeg(rgb: np.ndarray, path: Path, grayscale: bool) -> None:
    picture = Image.fromarray(rgb)
    (picture.convert("L") if grayscale else picture).save(path, quality=95)


def write_voc(root: str | Path, train: int = 4, val: int = 3, sbd: str | None = None, sbd_only: int = 3,
              sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES, grayscale: Iterable[str] = (),
              seed: int = 0) -> dict[str, list[str]]:
    """VOCdevkit/VOC2012 under ``root``; ``sbd`` = "mat" (benchmark_RELEASE/dataset/cls) or
    "png" (SegmentationClassAug) adds SBD labels for ``sbd_only`` extra images and, as the
    real SBD does, for VOC's first train and first val images.

    Image ``k`` has ``sizes[k % len(sizes)]`` (height, width); ids in ``grayscale`` are
    saved as grayscale JPEGs. Returns the ids: ``train``, ``val``, ``sbd_only``.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    ids = {"train": [f"2007_{k:06d}" for k in range(train)],
           "val": [f"2008_{k:06d}" for k in range(val)],
           "sbd_only": [f"2009_{k:06d}" for k in range(sbd_only if sbd else 0)]}
    gray = set(grayscale)
    scenes = {}
    for k, sample_id in enumerate(ids["train"] + ids["val"] + ids["sbd_only"]):
        labels = _scene(rng, sizes[k % len(sizes)], classes=range(1, len(voc.CLASSES)), background=0)
        scenes[sample_id] = labels
        _save_jpeg(paint(labels, rng), base / "JPEGImages" / f"{sample_id}.jpg", sample_id in gray)
    for split in ("train", "val"):
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids[split]))
        for sample_id in ids[split]:
            labels = scenes[sample_id].copy()
            labels[_boundaries(labels)] = 255
            save_palette_png(labels, base / "SegmentationClass" / f"{sample_id}.png")
    sbd_ids = ids["sbd_only"] + ids["train"][:1] + ids["val"][:1]
    if sbd == "mat":
        from scipy.io import savemat

        folder = Path(root) / "benchmark_RELEASE" / "dataset" / "cls"
        folder.mkdir(parents=True, exist_ok=True)
        for sample_id in sbd_ids:
            present = np.unique(scenes[sample_id])
            savemat(folder / f"{sample_id}.mat", {"GTcls": {
                "Segmentation": scenes[sample_id], "CategoriesPresent": present[present > 0].astype(np.uint8)}})
    elif sbd == "png":
        folder = base / "SegmentationClassAug"
        folder.mkdir(exist_ok=True)
        # the common conversion holds every VOC train and val label as well as SBD's
        for sample_id in dict.fromkeys(sbd_ids + ids["train"] + ids["val"]):
            Image.fromarray(scenes[sample_id]).save(folder / f"{sample_id}.png")
    elif sbd is not None:
        raise ValueError(f"sbd must be None, 'mat' or 'png', got {sbd!r}")
    return ids


# label ids a street scene is made of: evaluated classes and some that map to 255
STREET_IDS = (7, 8, 11, 21, 23, 24, 26, 33, 0, 1, 4, 6)


# as in the real release, train and val are recorded in different cities
CITIES = {"train": ("aachen", "bremen"), "val": ("frankfurt", "lindau")}


def write_cityscapes(root: str | Path, train: int = 3, val: int = 2, size: tuple[int, int] = (32, 64),
                     seed: int = 0) -> dict[str, list[Path]]:
    """leftImg8bit and gtFine (labelIds) under ``root``, images spread over two cities per
    split. Returns the label files per split."""
    rng = np.random.default_rng(seed)
    written: dict[str, list[Path]] = {"train": [], "val": []}
    for split, count in (("train", train), ("val", val)):
        for k in range(count):
            city = CITIES[split][k % 2]
            prefix = f"{city}_{k:06d}_000019"
            image_dir = Path(root) / "leftImg8bit" / split / city
            label_dir = Path(root) / "gtFine" / split / city
            image_dir.mkdir(parents=True, exist_ok=True)
            label_dir.mkdir(parents=True, exist_ok=True)
            # sky on top, road and objects below
            labels = np.full(size, 23, dtype=np.uint8)
            labels[size[0] // 4:] = _scene(rng, (size[0] - size[0] // 4, size[1]), STREET_IDS, 7, objects=4)
            Image.fromarray(paint(labels, rng)).save(image_dir / f"{prefix}{cityscapes.IMAGE_SUFFIX}")
            path = label_dir / f"{prefix}{cityscapes.LABEL_SUFFIX}"
            Image.fromarray(labels).save(path)
            written[split].append(path)
    return written


# the colours of the scenes below: far apart (at least 128 in one channel) and from the grey
# mean colour that pads crops. CLASS_COLOURS' neighbouring hues differ in brightness only and
# blur into each other at region edges through JPEG and resampling; VOC's labels keep those
# edges out of the alignment test behind their 255 band, these label maps have none
SCENE_COLOURS = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
                          (255, 255, 255), (0, 0, 0), (255, 128, 0)], dtype=np.uint8)
# the raw label values each miniature's scenes are made of, as (background, ignored value,
# classes...): the value at position k is painted SCENE_COLOURS[k]
SCENE_VALUES = {
    # road under sky, buildings, poles, pavement, trees, cars, pedestrians; void
    "camvid": (3, camvid.VOID, 0, 1, 2, 4, 5, 8, 9),
    # a wall, "other"; floor, person, chair and the last class (flag)
    "ade20k": (1, ade20k.OTHER, 4, 13, 20, 150),
    # sky-other, unlabeled; person, stop sign (the first id after an unused one), banner, tree, wood
    "coco_stuff164k": (156, IGNORE_INDEX, 0, 12, 91, 168, 181),
    # wall, background; aeroplane, cat, person, wood
    "pascal_context59": (56, pascal_context59.BACKGROUND, 1, 15, 37, 59),
}


def _painted_scene(rng: np.random.Generator, size: tuple[int, int], values: Sequence[int]) -> tuple[np.ndarray,
                                                                                                       np.ndarray]:
    """(HxWx3 picture, HxW raw labels): a scene over ``values`` (SCENE_VALUES' form) with a
    block of the ignored value, so every label map holds some ignore labels."""
    h, w = size
    positions = _scene(rng, size, classes=range(2, len(values)), background=0)
    top, left = int(rng.integers(0, h - h // 4)), int(rng.integers(0, w - w // 4))
    positions[top:top + max(1, h // 4), left:left + max(1, w // 4)] = 1
    return paint(positions, rng, SCENE_COLOURS), np.asarray(values, dtype=np.uint8)[positions]


def _save_label(labels: np.ndarray, path: Path) -> None:
    """An 8-bit grayscale PNG of the raw values, as these releases store them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels).save(path)


def _save_picture(rgb: np.ndarray, path: Path, grayscale: bool = False) -> None:
    """A JPEG or PNG by the path's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jpg":
        _save_jpeg(rgb, path, grayscale)
    else:
        Image.fromarray(rgb).save(path)


def _write_pairs(dataset: str, pairs: dict[str, list[tuple[str, Path, Path]]], sizes: Sequence[tuple[int, int]],
                 grayscale: Iterable[str], seed: int) -> dict[str, list[str]]:
    """Writes each split's (id, image path, label path); image ``k`` (counted over the splits in
    order) has ``sizes[k % len(sizes)]``. Returns the ids per split."""
    rng = np.random.default_rng(seed)
    gray = set(grayscale)
    k = 0
    for split_pairs in pairs.values():
        for sample_id, image, label in split_pairs:
            rgb, labels = _painted_scene(rng, sizes[k % len(sizes)], SCENE_VALUES[dataset])
            _save_picture(rgb, image, sample_id in gray)
            _save_label(labels, label)
            k += 1
    return {split: [sample_id for sample_id, _, _ in split_pairs] for split, split_pairs in pairs.items()}


def write_camvid(root: str | Path, train: int = 3, val: int = 2, test: int = 2,
                 sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES, seed: int = 0) -> dict[str, list[str]]:
    """``{train,val,test}`` and ``{train,val,test}annot`` under ``root``: RGB PNG frames and
    grayscale PNG labels 0-10 with void (11). Real frames are 360x480 or 720x960; ``sizes``
    says which (default: odd small sizes)."""
    base = Path(root)
    # CamVid names frames by sequence and frame number
    sequences = {"train": "0001TP", "val": "0016E5", "test": "Seq05VD"}
    pairs = {}
    for split, count in (("train", train), ("val", val), ("test", test)):
        ids = [f"{sequences[split]}_{k:06d}" for k in range(count)]
        pairs[split] = [(i, base / split / f"{i}.png", base / f"{split}annot" / f"{i}.png") for i in ids]
    return _write_pairs("camvid", pairs, sizes, (), seed)


def write_ade20k(root: str | Path, train: int = 3, val: int = 2, sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
                 seed: int = 0) -> dict[str, list[str]]:
    """``ADEChallengeData2016/{images,annotations}/{training,validation}`` under ``root``:
    JPEG images and grayscale PNG labels 0-150 with "other" (0)."""
    base = Path(root) / ade20k.RELEASE
    pairs = {}
    for split, count in (("train", train), ("val", val)):
        folder = ade20k.SPLIT_FOLDERS[split]
        ids = [f"ADE_{split}_{k + 1:08d}" for k in range(count)]
        pairs[split] = [(i, base / "images" / folder / f"{i}.jpg", base / "annotations" / folder / f"{i}.png")
                        for i in ids]
    return _write_pairs("ade20k", pairs, sizes, (), seed)


def write_coco_stuff164k(root: str | Path, train: int = 3, val: int = 2,
                         sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES, grayscale: Iterable[str] = (),
                         seed: int = 0) -> dict[str, list[str]]:
    """``images/{train2017,val2017}`` and ``stuffthingmaps_trainval2017/{train2017,val2017}``
    under ``root``: JPEG images (ids in ``grayscale`` saved grayscale, as some of COCO's are)
    and grayscale PNG label maps 0-181 with unlabeled (255)."""
    base = Path(root)
    pairs = {}
    for split, count in (("train", train), ("val", val)):
        folder = coco_stuff164k.SPLIT_FOLDERS[split]
        # COCO's file names are the image id in 12 digits; train and val ids never meet
        ids = [f"{(k + 1) * 9 + (0 if split == 'train' else 5):012d}" for k in range(count)]
        pairs[split] = [(i, base / "images" / folder / f"{i}.jpg",
                         base / coco_stuff164k.LABEL_FOLDER / folder / f"{i}.png") for i in ids]
    return _write_pairs("coco_stuff164k", pairs, sizes, grayscale, seed)


def write_pascal_context59(root: str | Path, train: int = 3, val: int = 2,
                           sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES, lists: str = "SegmentationContext",
                           seed: int = 0) -> dict[str, list[str]]:
    """``VOCdevkit/VOC2010`` under ``root``: JPEG images, the converted 59-class label PNGs
    (0-59, background 0) and the split lists in ``ImageSets/<lists>`` ("SegmentationContext"
    as the conversion writes them, or "Main" as VOC 2010 ships them)."""
    base = Path(root) / "VOCdevkit" / "VOC2010"
    pairs = {}
    for split, count in (("train", train), ("val", val)):
        ids = [f"{2008 + (split == 'val')}_{k:06d}" for k in range(count)]
        pairs[split] = [(i, base / "JPEGImages" / f"{i}.jpg", base / pascal_context59.LABEL_FOLDER / f"{i}.png")
                        for i in ids]
    ids = _write_pairs("pascal_context59", pairs, sizes, (), seed)
    (base / "ImageSets" / lists).mkdir(parents=True, exist_ok=True)
    for split, split_ids in ids.items():
        split_file = base / "ImageSets" / lists / pascal_context59.SPLIT_FILES[split]
        split_file.write_text("".join(f"{i}\n" for i in split_ids))
    return ids
