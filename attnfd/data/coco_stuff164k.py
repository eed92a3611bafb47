"""COCO-Stuff-164k (Caesar et al., CVPR 2018): COCO 2017's images with stuff and thing labels,
171 classes.

Layout under the data root, as ``train2017.zip`` and ``val2017.zip`` (COCO) and
``stuffthingmaps_trainval2017.zip`` (COCO-Stuff) extract into ``images/`` and
``stuffthingmaps_trainval2017/``::

    images/{train2017,val2017}/<12 digits>.jpg
    stuffthingmaps_trainval2017/{train2017,val2017}/<12 digits>.png

The label PNGs hold COCO's category ids minus one (0-181; 0-90 things, 91-181 stuff) and 255
for unlabeled. Eleven thing ids have no annotations in COCO 2017; the other 171, in order,
are the classes 0-170 (the usual remapping), and 255 stays ignored. 118,287 training and
5,000 validation images.
"""

from __future__ import annotations

from pathlib import Path

from attnfd.data.layout import IndexPngLabels, SplitIndex, existing_root, lookup_table, pair_by_stem
from attnfd.data.spec import DatasetSpec, poly_recipe
from attnfd.data.voc import PNG_PALETTE
from attnfd.errors import ConfigError
from attnfd.names import IGNORE_INDEX

# COCO-Stuff's 182 labels in id order (label value = COCO category id - 1); None for the
# eleven thing ids COCO 2017 never uses (street sign, hat, shoe, eye glasses, plate, mirror,
# window, desk, door, blender, hair brush)
LABELS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", None, "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", None, "backpack", "umbrella", None, None, "handbag", "tie", "suitcase",
    "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard",
    "surfboard", "tennis racket", "bottle", None, "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana",
    "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", None, "dining table", None, None, "toilet", None, "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", None, "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush", None,
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard", "carpet",
    "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain", "desk-stuff",
    "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood",
    "flower", "fog", "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill", "house",
    "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper",
    "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing", "railroad", "river",
    "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other", "skyscraper", "snow",
    "solid-other", "stairs", "stone", "straw", "structural-other", "table", "tent", "textile-other", "towel", "tree",
    "vegetable", "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood",
    "water-other", "waterdrops", "window-blind", "window-other", "wood",
)
USED_IDS = tuple(label for label, name in enumerate(LABELS) if name is not None)
CLASSES = tuple(LABELS[label] for label in USED_IDS)
# VOC's colour map over the train ids (COCO-Stuff's own colour table is not reproduced)
PALETTE = PNG_PALETTE[: len(CLASSES)]
SPLIT_FOLDERS = {"train": "train2017", "val": "val2017"}
EXPECTED_COUNTS = {"train": 118287, "val": 5000}
LABEL_FOLDER = "stuffthingmaps_trainval2017"
IMAGE_ARCHIVES = ("http://images.cocodataset.org/zips/train2017.zip", "http://images.cocodataset.org/zips/val2017.zip")
LABEL_ARCHIVE = "http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/stuffthingmaps_trainval2017.zip"


class CocoStuff164kLayout(IndexPngLabels):
    name = "coco_stuff164k"
    classes = CLASSES
    palette = PALETTE
    splits = ("train", "val")
    expected_counts = EXPECTED_COUNTS
    label_values = "0-181 but the 11 ids COCO 2017 does not use, or 255 for unlabeled"
    train_id_table, allowed_table = lookup_table({**{label: k for k, label in enumerate(USED_IDS)}, IGNORE_INDEX: IGNORE_INDEX})

    def index(self, root: Path, split: str) -> SplitIndex:
        if split not in SPLIT_FOLDERS:
            raise ConfigError(f"coco_stuff164k: unknown split {split!r}; use train or val")
        root = existing_root("coco_stuff164k", root)
        folder = SPLIT_FOLDERS[split]
        return pair_by_stem(self.name, split, root / "images" / folder, root / LABEL_FOLDER / folder, ".jpg", ".png")


COCO_STUFF164K = CocoStuff164kLayout()


def download(root: str | Path) -> None:
    """Fetch COCO 2017's train and val images (about 19 GB) from COCO's site and the label maps
    from COCO-Stuff's into ``root``."""
    from torchvision.datasets import utils

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for url, split in zip(IMAGE_ARCHIVES, ("train", "val"), strict=True):
        if not (root / "images" / SPLIT_FOLDERS[split]).is_dir():
            utils.download_and_extract_archive(url, download_root=str(root), extract_root=str(root / "images"))
    if not (root / LABEL_FOLDER).is_dir():
        utils.download_and_extract_archive(LABEL_ARCHIVE, download_root=str(root),
                                           extract_root=str(root / LABEL_FOLDER))


SPEC = DatasetSpec(
    name="coco_stuff164k", classes=CLASSES, palette=PALETTE, layout=COCO_STUFF164K, download=download,
    # CIRKD (Yang et al., CVPR 2022), train_scripts/train_cirkd/coco_stuff_164k/deeplabv3_res18.sh
    # with train_cirkd.py's defaults (winycg/CIRKD at c3f301e): 512x512 crops, batch 16, SGD lr
    # 0.02, momentum 0.9, weight decay 1e-4, poly 0.9 over 80,000 iterations = 80000 * 16 / 118287
    # = 11 epochs, one learning rate for the whole network. AttnFD publishes no alpha for
    # COCO-Stuff: its VOC value, a start for a search
    preset=poly_recipe(image_size=512, epochs=11, lr=0.02),
    recipe_source="CIRKD (Yang et al., CVPR 2022): train_scripts/train_cirkd/coco_stuff_164k/deeplabv3_res18.sh, "
                  "train_cirkd.py defaults",
)
