"""ADE20K as the SceneParsing benchmark releases it (Zhou et al., CVPR 2017): 150 classes.

Layout under the data root, as ``ADEChallengeData2016.zip`` extracts (the
``ADEChallengeData2016`` folder itself is accepted too)::

    ADEChallengeData2016/images/{training,validation}/ADE_{train,val}_<8 digits>.jpg
    ADEChallengeData2016/annotations/{training,validation}/ADE_{train,val}_<8 digits>.png

The annotation PNGs hold 0-150: 0 is "other" (no evaluated class), ignored; 1-150 are the
classes, trained as 0-149. 20,210 training and 2,000 validation images.
"""

from __future__ import annotations

from pathlib import Path

from attnfd.data.layout import IndexPngLabels, SplitIndex, existing_root, lookup_table, pair_by_stem
from attnfd.data.spec import DatasetSpec, poly_recipe
from attnfd.data.voc import PNG_PALETTE
from attnfd.errors import ConfigError
from attnfd.names import IGNORE_INDEX

# the first name of each of SceneParsing's objectInfo150 entries, in label order (1-150)
CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)
# VOC's colour map over the train ids (the benchmark's own colour table is not reproduced)
PALETTE = PNG_PALETTE[: len(CLASSES)]
OTHER = 0
SPLIT_FOLDERS = {"train": "training", "val": "validation"}
EXPECTED_COUNTS = {"train": 20210, "val": 2000}
RELEASE = "ADEChallengeData2016"
ARCHIVE_URL = "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip"


class ADE20KLayout(IndexPngLabels):
    name = "ade20k"
    classes = CLASSES
    palette = PALETTE
    splits = ("train", "val")
    expected_counts = EXPECTED_COUNTS
    label_values = "0-150 (0 is 'other', ignored)"
    # label k is class k - 1: the shift that drops "other"
    train_id_table, allowed_table = lookup_table({OTHER: IGNORE_INDEX, **{k + 1: k for k in range(len(CLASSES))}})

    def release_dir(self, root: Path) -> Path:
        root = existing_root("ade20k", root)
        return root / RELEASE if (root / RELEASE).is_dir() else root

    def index(self, root: Path, split: str) -> SplitIndex:
        if split not in SPLIT_FOLDERS:
            raise ConfigError(f"ade20k: unknown split {split!r}; use train or val")
        base, folder = self.release_dir(Path(root)), SPLIT_FOLDERS[split]
        return pair_by_stem(self.name, split, base / "images" / folder, base / "annotations" / folder, ".jpg", ".png")


ADE20K = ADE20KLayout()


def download(root: str | Path) -> None:
    """Fetch the benchmark's archive from its site into ``root`` (about 1 GB)."""
    from torchvision.datasets import utils

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if not (root / RELEASE).is_dir():
        utils.download_and_extract_archive(ARCHIVE_URL, download_root=str(root))


SPEC = DatasetSpec(
    name="ade20k", classes=CLASSES, palette=PALETTE, layout=ADE20K, download=download,
    # CIRKD (Yang et al., CVPR 2022), train_scripts/train_cirkd/ade20k/deeplabv3_res18.sh with
    # train_cirkd.py's defaults (winycg/CIRKD at c3f301e): 512x512 crops, batch 16, SGD lr 0.02,
    # momentum 0.9, weight decay 1e-4, poly 0.9 over 40,000 iterations = 40000 * 16 / 20210 = 32
    # epochs, one learning rate for the whole network. AttnFD publishes no alpha for ADE20K: its
    # VOC value, a start for a search
    preset=poly_recipe(image_size=512, epochs=32, lr=0.02),
    recipe_source="CIRKD (Yang et al., CVPR 2022): train_scripts/train_cirkd/ade20k/deeplabv3_res18.sh, "
                  "train_cirkd.py defaults",
)
