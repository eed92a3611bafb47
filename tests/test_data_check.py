"""``attnfd data check``: a sound copy passes; each kind of damage, one folder each, fails
with the problem named."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attnfd.cli import main
from attnfd.config import ConfigError, TrainConfig
from attnfd.data import check_data
from attnfd.data.miniature import save_palette_png, write_cityscapes, write_voc

VOC2012 = Path("VOCdevkit", "VOC2012")


def run_check(*args) -> tuple[int, str]:
    """(exit status, stdout + stderr) of ``attnfd data check``."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main(["data", "check", "--workers", "1", *args])
            status = 0
        except SystemExit as exit:
            status = exit.code
    return status, out.getvalue()


def voc(tmp_path, **kwargs) -> Path:
    root = tmp_path / "voc"
    write_voc(root, **{"train": 2, "val": 2, **kwargs})
    return root


def test_a_sound_copy_passes_and_counts_are_compared_to_the_release(tmp_path):
    root = voc(tmp_path, sbd="mat", sbd_only=2)
    status, out = run_check("--dataset", "voc", "--root", str(root), "--partial")
    assert status == 0, out
    assert "train: 4 pairs (train_aug, official release: 10582)" in out and "read 6 pairs" in out
    assert out.strip().endswith("OK")
    # without --partial a copy smaller than the release is a problem
    status, out = run_check("--dataset", "voc", "--root", str(root))
    assert status == 1 and "PROBLEM count" in out and "10582" in out

    write_cityscapes(tmp_path / "cityscapes", train=2, val=2)
    status, out = run_check("--dataset", "cityscapes", "--root", str(tmp_path / "cityscapes"), "--partial")
    assert status == 0, out


def _label(root: Path, sample_id: str) -> Path:
    return root / VOC2012 / "SegmentationClass" / f"{sample_id}.png"


def _image(root: Path, sample_id: str) -> Path:
    return root / VOC2012 / "JPEGImages" / f"{sample_id}.jpg"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit_label(path: Path, edit) -> None:
    labels = np.array(Image.open(path))
    save_palette_png(edit(labels), path)


def _set_value(labels: np.ndarray, value: int) -> np.ndarray:
    labels[2:4, 2:4] = value
    return labels


VOC_DAMAGE = {
    "missing image": (lambda r: os.remove(_image(r, "2007_000001")), "missing pair", "no image"),
    "missing label": (lambda r: os.remove(_label(r, "2008_000000")), "missing pair", "no label"),
    "truncated image": (lambda r: _truncate(_image(r, "2007_000000")), "unreadable image", "2007_000000.jpg"),
    "not an image": (lambda r: _image(r, "2008_000001").write_bytes(b"<html>403</html>"), "unreadable image",
                     "2008_000001.jpg"),
    "truncated label": (lambda r: _truncate(_label(r, "2008_000001")), "unreadable label", "2008_000001.png"),
    "label value 30": (lambda r: _edit_label(_label(r, "2007_000000"), lambda a: _set_value(a, 30)),
                       "label values out of range", ": 30 (expected 0-20"),
    "colour label": (lambda r: Image.open(_label(r, "2007_000001")).convert("RGB").save(_label(r, "2007_000001")),
                     "label is not class indices", "mode RGB"),
    # write_voc's sizes, in order: 2007_000000 45x61, 2007_000001 53x38, 2008_000000 23x29, 2008_000001 64x47
    "size mismatch": (lambda r: _edit_label(_label(r, "2008_000000"), lambda a: a[:-1]), "size mismatch",
                      "image 23x29, label 22x29"),
    "no val list": (lambda r: os.remove(r / VOC2012 / "ImageSets" / "Segmentation" / "val.txt"), "layout",
                    "val.txt"),
    "val in train": (lambda r: (r / VOC2012 / "ImageSets" / "Segmentation" / "train.txt").write_text(
        "2007_000000\n2007_000001\n2008_000000\n"), "train/val overlap", "2008_000000"),
    "empty train": (lambda r: (r / VOC2012 / "ImageSets" / "Segmentation" / "train.txt").write_text(""),
                    "empty split", "train"),
}


@pytest.mark.parametrize("damage", list(VOC_DAMAGE))
def test_voc_damage_is_caught(tmp_path, damage):
    root = voc(tmp_path)
    breaker, kind, detail = VOC_DAMAGE[damage]
    breaker(root)
    status, out = run_check("--dataset", "voc", "--root", str(root), "--partial")
    assert status == 1, out
    assert f"PROBLEM {kind}" in out and detail in out, out


def test_an_sbd_file_without_labels_is_caught(tmp_path):
    from scipy.io import savemat

    root = voc(tmp_path, sbd="mat", sbd_only=1)
    savemat(root / "benchmark_RELEASE" / "dataset" / "cls" / "2009_000000.mat", {"something": np.zeros(3)})
    status, out = run_check("--dataset", "voc", "--root", str(root), "--partial")
    assert status == 1 and "PROBLEM unreadable label" in out and "GTcls" in out, out


def _cityscapes_files(root: Path, split: str, kind: str) -> list[Path]:
    folder, suffix = {"image": ("leftImg8bit", "_leftImg8bit.png"), "label": ("gtFine", "_gtFine_labelIds.png")}[kind]
    return sorted((root / folder / split).glob(f"*/*{suffix}"))


def _label_id_40(path: Path) -> None:
    labels = np.array(Image.open(path))
    labels[0, 0] = 40
    Image.fromarray(labels).save(path)


CITYSCAPES_DAMAGE = {
    "missing label": (lambda r: os.remove(_cityscapes_files(r, "train", "label")[0]), "missing pair", "no label"),
    "missing image": (lambda r: os.remove(_cityscapes_files(r, "val", "image")[1]), "missing pair", "no image"),
    "label id 40": (lambda r: _label_id_40(_cityscapes_files(r, "val", "label")[0]), "label values out of range",
                    ": 40 (expected label ids 0-33)"),
    "no gtFine/val": (lambda r: shutil.rmtree(r / "gtFine" / "val"), "layout", str(Path("gtFine", "val"))),
}


@pytest.mark.parametrize("damage", list(CITYSCAPES_DAMAGE))
def test_cityscapes_damage_is_caught(tmp_path, damage):
    root = tmp_path / "cityscapes"
    write_cityscapes(root, train=2, val=2)
    breaker, kind, detail = CITYSCAPES_DAMAGE[damage]
    breaker(root)
    status, out = run_check("--dataset", "cityscapes", "--root", str(root), "--partial")
    assert status == 1, out
    assert f"PROBLEM {kind}" in out and detail in out, out


def test_quick_check_is_what_the_trainer_runs(tmp_path):
    root = voc(tmp_path)
    _truncate(_image(root, "2007_000000"))
    # --quick reads no file, so a damaged image passes it; a missing one does not
    assert run_check("--dataset", "voc", "--root", str(root), "--partial", "--quick")[0] == 0
    os.remove(_image(root, "2007_000001"))
    assert run_check("--dataset", "voc", "--root", str(root), "--partial", "--quick")[0] == 1
    config = TrainConfig.from_dict({"dataset": "voc", "data_root": str(root), "batch_size": 2})
    with pytest.raises(ConfigError, match="2007_000001"):
        check_data(config)


def test_bad_usage_exits_2(tmp_path, monkeypatch):
    monkeypatch.delenv("ATTNFD_DATA", raising=False)
    status, out = run_check("--dataset", "voc")
    assert status == 2 and "attnfd: error: no data root for voc" in out
    status, out = run_check("--dataset", "cityscapes", "--root", str(tmp_path), "--download")
    assert status == 2 and "Cityscapes needs an account on its website" in out and "only voc, " in out


def test_download_fetches_voc_and_sbd_into_the_root(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeVOC:
        def __init__(self, root, year, image_set, download):
            calls.append(("voc", root, year, image_set, download))
            write_voc(root, train=2, val=2)

    class FakeSBD:
        def __init__(self, root, image_set, mode, download):
            calls.append(("sbd", root, mode, download))
            (Path(root) / "cls").mkdir(parents=True)

    monkeypatch.setattr(torchvision.datasets, "VOCSegmentation", FakeVOC)
    monkeypatch.setattr(torchvision.datasets, "SBDataset", FakeSBD)
    root = tmp_path / "fresh"
    status, out = run_check("--dataset", "voc", "--root", str(root), "--download", "--partial")
    assert calls == [("voc", str(root), "2012", "trainval", True), ("sbd", str(root / "SBD"), "segmentation", True)]
    # SBD's (here empty) cls folder is found, so train is train_aug
    assert status == 0 and "train_aug" in out, out
