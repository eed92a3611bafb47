import pytest
import torch

from attnfd.data.shapes import CLASSES
from attnfd.data.shapes_dataset import ShapesDataset


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


def test_training_draws_new_scenes_every_epoch_and_validation_stays_fixed():
    from attnfd.trainer import FreshScenesSampler

    train, val = ShapesDataset("train", size=32, length=6), ShapesDataset("val", size=32, length=6)
    assert train[100][1].shape == (32, 32)  # the generator has no end
    with pytest.raises(IndexError):  # the validation split stays fixed at its length
        val[6]

    sampler = FreshScenesSampler(train, num_replicas=1, rank=0, shuffle=True, seed=0)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
    assert [sorted(e) for e in epochs] == [list(range(6 * k, 6 * k + 6)) for k in range(3)]
    sampler.set_epoch(1)  # what a resumed run does: the same scenes in the same order
    assert list(sampler) == epochs[1]


def test_an_objects_class_is_the_surface_it_lies_on_not_its_own_pixels():
    from attnfd.data.shapes import generate

    seen = set()
    for index in range(30):
        image, label = generate(0, "train", index, size=48)
        classes = set(label[label > 0].tolist())
        # one surface per scene: every object on it has that surface's class, whatever its colour
        assert len(classes) == 1
        seen |= classes
    assert seen == {1, 2, 3}
    # and its colour says nothing: objects of every class have the same mean colour
    colours = {c: [] for c in (1, 2, 3)}
    for index in range(300):
        image, label = generate(0, "train", index, size=48)
        c = int(label.max())
        colours[c].append(image[label == c].mean(axis=0))
    means = [sum(v) / len(v) for v in colours.values()]
    assert max(abs(a - b).max() for a in means for b in means) < 0.1
