import torch

from attnfd.data.shapes import CLASSES, ShapesDataset


def test_shapes_is_deterministic_by_seed_and_split():
    a, b = ShapesDataset("train", size=48, length=4, seed=3), ShapesDataset("train", size=48, length=4, seed=3)
    assert torch.equal(a[2][0], b[2][0]) and torch.equal(a[2][1], b[2][1])
    assert not torch.equal(a[2][0], ShapesDataset("train", size=48, length=4, seed=4)[2][0])
    assert not torch.equal(a[2][0], ShapesDataset("val", size=48, length=4, seed=3)[2][0])


def test_shapes_has_every_class_and_a_real_foreground():
    data = ShapesDataset("train", size=64, length=40)
    labels = torch.stack([data[i][1] for i in range(len(data))])
    image = data[0][0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert set(labels.unique().tolist()) == set(range(len(CLASSES)))
    assert 0.15 < (labels > 0).float().mean() < 0.45
