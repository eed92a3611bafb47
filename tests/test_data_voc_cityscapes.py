"""VOC (with SBD) and Cityscapes read from small folders in their real layouts: counts, the
train_aug list, label mapping, the augmentation keeping image and labels aligned, and
training/evaluation on images of different sizes."""

import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from attnfd.config import ConfigError, TrainConfig
from attnfd.data import CITYSCAPES, VOC, build_dataset, resolve_data_root
from attnfd.data.folder import SegmentationFiles
from attnfd.data.miniature import CLASS_COLOURS, write_cityscapes, write_voc
from attnfd.data.transforms import MEAN_COLOUR, denormalise
from attnfd.data.voc import PNG_PALETTE

VOC_DIR = ("VOCdevkit", "VOC2012")


def voc_path(root, *parts):
    return root.joinpath(*VOC_DIR, *parts)


def test_voc_reads_the_standard_layout(tmp_path):
    ids = write_voc(tmp_path, train=4, val=3, grayscale=["2007_000001"])
    train = SegmentationFiles(VOC, tmp_path, "train", image_size=40, train=True)
    val = SegmentationFiles(VOC, tmp_path, "val")
    assert [s.id for s in train.samples] == ids["train"]
    assert [s.id for s in val.samples] == ids["val"]
    assert len(train.classes) == len(train.palette) == train.num_classes == 21
    assert train.classes[15] == "person" and train.palette[15] == (192, 128, 128)

    # the palette PNG's indices are the labels, 255 boundaries included
    expected = np.array(Image.open(voc_path(tmp_path, "SegmentationClass", "2008_000000.png")))
    image, labels = val[0]
    assert torch.equal(labels, torch.from_numpy(expected).long())
    assert 255 in labels.unique().tolist() and labels.dtype == torch.int64
    # validation keeps the original (odd) size; images are normalised floats
    assert image.shape == (3, 45, 61) and image.dtype == torch.float32
    assert [tuple(val[k][1].shape) for k in range(3)] == [(45, 61), (53, 38), (23, 29)]
    # a grayscale JPEG comes out as three channels
    gray, _ = train.load(1)
    assert gray.shape[0] == 3 and torch.equal(gray[0], gray[1])


@pytest.mark.parametrize("sbd", ["mat", "png"])
def test_train_aug_adds_sbd_and_never_holds_a_val_image(tmp_path, sbd):
    ids = write_voc(tmp_path, train=3, val=3, sbd=sbd, sbd_only=3)
    if sbd == "png":
        # a train_aug list that (wrongly) names a val image: it must still be left out
        listed = ids["train"] + ids["sbd_only"] + ids["val"][:2]
        voc_path(tmp_path, "ImageSets", "Segmentation", "train_aug.txt").write_text(
            "".join(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n" for i in listed))
    train = SegmentationFiles(VOC, tmp_path, "train", image_size=32, train=True)
    train_ids = [s.id for s in train.samples]
    assert sorted(train_ids) == sorted(ids["train"] + ids["sbd_only"])
    assert not set(train_ids) & set(ids["val"])

    by_id = {s.id: k for k, s in enumerate(train.samples)}
    # an SBD-only image gets SBD's labels (no 255 boundaries, values from the scene)
    _, sbd_labels = train.load(by_id[ids["sbd_only"][0]])
    assert 255 not in sbd_labels.unique().tolist() and sbd_labels.max() > 0
    if sbd == "mat":
        # an image VOC labels itself keeps VOC's labels, with their boundaries
        _, voc_labels = train.load(by_id[ids["train"][0]])
        assert 255 in voc_labels.unique().tolist()


def test_cityscapes_label_ids_become_the_19_train_ids(tmp_path):
    written = write_cityscapes(tmp_path, train=3, val=2)
    # overwrite one label with every label id 0-33, one column each
    ids = np.tile(np.arange(34, dtype=np.uint8), (32, 2))[:, :64]
    Image.fromarray(ids).save(written["val"][0])
    val = SegmentationFiles(CITYSCAPES, tmp_path, "val")
    assert len(val) == 2 and len(SegmentationFiles(CITYSCAPES, tmp_path, "train", image_size=16, train=True)) == 3
    assert val.num_classes == 19 and val.classes[0] == "road" and val.classes[18] == "bicycle"
    _, labels = val[0]
    evaluated = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    for label_id in range(34):
        assert labels[0, label_id].item() == evaluated.get(label_id, 255), label_id


def _colour_classes(image: torch.Tensor, candidates: np.ndarray) -> torch.Tensor:
    """The nearest of ``candidates`` (Nx3 uint8) for each pixel of a normalised image."""
    rgb = denormalise(image).clamp(0, 1).permute(1, 2, 0) * 255
    distances = torch.cdist(rgb.reshape(-1, 3), torch.tensor(candidates, dtype=torch.float32))
    return distances.argmin(1).reshape(rgb.shape[:2])


def _interior(labels: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Labelled pixels whose whole (2r+1)^2 neighbourhood has their label."""
    values = labels.float()[None, None]
    high = torch.nn.functional.max_pool2d(values, 2 * radius + 1, 1, radius)
    low = -torch.nn.functional.max_pool2d(-values, 2 * radius + 1, 1, radius)
    return (high == low)[0, 0] & (labels != 255)


def test_augmentation_moves_image_and_labels_together(tmp_path):
    # sizes include an image smaller than the crop even at scale 2 (15x18 -> at most 30x36)
    write_voc(tmp_path, train=4, val=1, sizes=((41, 57), (15, 18), (50, 33), (37, 44)))
    crop = (40, 48)
    dataset = SegmentationFiles(VOC, tmp_path, "train", image_size=crop, train=True)
    # the candidates: the 21 class colours, and the padding colour
    candidates = np.concatenate([CLASS_COLOURS[:21], np.array([MEAN_COLOUR], dtype=np.uint8)])
    saw_padding, checked = False, 0
    for draw in range(24):
        torch.manual_seed(draw)
        image, labels = dataset[draw % len(dataset)]
        assert image.shape == (3, *crop) and labels.shape == crop and labels.dtype == torch.int64
        # nearest interpolation: no label value is invented
        assert set(labels.unique().tolist()) <= set(range(21)) | {255}
        colour_class = _colour_classes(image, candidates)
        # resampling (and JPEG's chroma subsampling) blend colours along edges only
        inside = _interior(labels)
        checked += int(inside.sum())
        agree = (colour_class[inside] == labels[inside]).float().mean().item() if inside.any() else 1.0
        assert agree > 0.99, (draw, agree)
        # the padding is exactly the mean colour, and its labels are ignored
        rgb = denormalise(image) * 255
        padding = ((rgb - torch.tensor(MEAN_COLOUR).view(3, 1, 1)).abs() < 0.01).all(0)
        if padding.any():
            saw_padding = True
            assert (labels[padding] == 255).all()
    assert saw_padding and checked > 5000


def test_cityscapes_crop_is_height_by_width(tmp_path):
    write_cityscapes(tmp_path, train=2, val=1, size=(32, 64))
    dataset = SegmentationFiles(CITYSCAPES, tmp_path, "train", image_size=(24, 40), train=True)
    image, labels = dataset[0]
    assert image.shape == (3, 24, 40) and labels.shape == (24, 40)


def test_data_root_comes_from_flag_or_environment(tmp_path, monkeypatch):
    write_voc(tmp_path / "voc", train=2, val=1)
    monkeypatch.setenv("ATTNFD_DATA", str(tmp_path))
    assert resolve_data_root("voc") == tmp_path / "voc"
    assert resolve_data_root("voc", "/elsewhere") == tmp_path.joinpath("/elsewhere")
    config = TrainConfig.from_dict({"dataset": "voc", "image_size": 32, "batch_size": 2})
    assert len(build_dataset(config, "train")) == 2
    monkeypatch.delenv("ATTNFD_DATA")
    with pytest.raises(ConfigError, match="ATTNFD_DATA"):
        build_dataset(config, "train")


TINY_VOC = {"dataset": "voc", "image_size": 32, "batch_size": 2, "head_channels": 16, "aspp_rates": (1, 2, 3),
            "backbone": "resnet18", "epochs": 1, "lr": 0.01, "workers": 0}


def test_training_and_evaluation_on_images_of_different_sizes(tmp_path):
    from attnfd.trainer import fit

    write_voc(tmp_path / "voc", train=4, val=3, sbd="mat", sbd_only=2)
    rows = []
    # a copy smaller than the official release trains, with a warning that says so
    with pytest.warns(UserWarning) as warned:
        last = fit({**TINY_VOC, "data_root": str(tmp_path / "voc"), "out_dir": str(tmp_path / "run")},
                   lambda row, _: rows.append(row))
    messages = [str(w.message) for w in warned]
    assert "voc: train (train_aug) lists 6 images, the official release 10582" in messages
    assert "voc: val lists 3 images, the official release 1449" in messages
    assert len(rows) == 1 and math.isfinite(last["loss"]) and math.isfinite(last["miou"])
    assert len(last["per_class_iou"]) == 21


def test_trainer_fails_in_seconds_on_a_wrong_data_root(tmp_path):
    from attnfd.trainer import Run

    missing = tmp_path / "no-such-folder"
    with pytest.raises(ConfigError, match=str(missing)):
        Run(TrainConfig.from_dict({**TINY_VOC, "data_root": str(missing)}))
    write_voc(tmp_path / "voc", train=2, val=2)
    val_list = voc_path(tmp_path / "voc", "ImageSets", "Segmentation", "val.txt")
    os.remove(val_list)
    with pytest.raises(ConfigError, match=str(val_list)):
        Run(TrainConfig.from_dict({**TINY_VOC, "data_root": str(tmp_path / "voc")}))


def test_palette_png_carries_voc_colours(tmp_path):
    write_voc(tmp_path, train=1, val=1)
    with Image.open(voc_path(tmp_path, "SegmentationClass", "2007_000000.png")) as image:
        assert image.mode == "P"
        palette = image.getpalette()
    assert tuple(palette[255 * 3: 256 * 3]) == PNG_PALETTE[255] == (224, 224, 192)
