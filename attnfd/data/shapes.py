"""``shapes``: the embedded default data set, generated on the fly, deterministic by seed.

A pixel's class is its object's shape x texture ({disk, square, triangle} x {stripes,
checker}), so neither cue alone decides it. Untextured distractor objects are labelled
background, colours are random (colour carries no label), and objects vary in scale,
rotation, texture period and orientation, overlap in painter's order, and sit on a
cluttered background with brightness jitter and noise.

The two cues are learnt at very different speeds. A from-scratch ResNet-18 separates
objects from background and stripes from checks within a few hundred steps; telling a
partly hidden triangle from a square is far slower: at 64 px and output stride 16 neither
the 4-epoch students nor the 16-epoch ResNet-101 teacher of the shapes recipe got there.
The teacher's lead over a student is on textures and boundaries (README, "The built-in
data set")

Sample ``i`` of split ``s`` is drawn from ``numpy.random.default_rng([seed, split_id, i])``,
so the set needs no files, is the same on every machine and has no size limit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

SHAPES = ("disk", "square", "triangle")
TEXTURES = ("stripes", "checker")
CLUTTER_TEXTURES = ("dots", "plain", "noise")
CLASSES = ("background",) + tuple(f"{s} {t}" for s in SHAPES for t in TEXTURES)
PALETTE = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180))
SPLIT_IDS = {"train": 0, "val": 1}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _shape_mask(kind: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """u, v: pixel coordinates in the object's rotated frame, centred on it."""
    if kind == "disk":
        return u * u + v * v <= r * r
    if kind == "square":
        half = r * 0.85
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    # equilateral triangle as three half-planes, inscribed in a circle of 1.4 r so that its
    # area (2.5 r^2) is near the disk's and the square's and the classes stay balanced
    inside = np.ones_like(u, dtype=bool)
    for k in range(3):
        angle = np.pi / 2 + k * 2 * np.pi / 3
        inside &= u * np.cos(angle) + v * np.sin(angle) <= 0.7 * r
    return inside


def _texture(kind: str, u: np.ndarray, v: np.ndarray, period: float, rng: np.random.Generator) -> np.ndarray:
    """A map in [0, 1] that mixes an object's two colours."""
    if kind == "stripes":
        return (np.sin(2 * np.pi * u / period) > 0).astype(np.float32)
    if kind == "checker":
        return ((np.floor(u / (period / 2)) + np.floor(v / (period / 2))) % 2).astype(np.float32)
    if kind == "dots":
        return ((np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period)) > 0.5).astype(np.float32)
    if kind == "plain":
        return np.zeros_like(u, dtype=np.float32)
    return (rng.random(u.shape) > 0.5).astype(np.float32)


def _colours(rng: np.random.Generator, contrast: float) -> tuple[np.ndarray, np.ndarray]:
    a = rng.random(3).astype(np.float32)
    b = rng.random(3).astype(np.float32)
    # keep the two colours apart (L1 distance) so the texture is visible at all
    while np.abs(a - b).sum() < contrast:
        b = rng.random(3).astype(np.float32)
    return a, b


def generate(seed: int, split: str, index: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One scene: an HxWx3 float32 image in [0, 1] and an HxW uint8 label map."""
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)

    # background: a colour gradient with a faint texture of its own
    c0, c1 = _colours(rng, 0.6)
    t = (xs * np.cos(rng.uniform(0, np.pi)) + ys * np.sin(rng.uniform(0, np.pi))) / size
    image = c0 + (c1 - c0) * ((t - t.min()) / (np.ptp(t) + 1e-6))[..., None] * 0.5
    clutter = _texture(str(rng.choice(CLUTTER_TEXTURES)), xs, ys, rng.uniform(4, 12), rng)
    image = image + 0.08 * (clutter[..., None] - 0.5)
    label = np.zeros((size, size), dtype=np.uint8)

    for _ in range(int(rng.integers(2, 5))):
        r = rng.uniform(0.14, 0.28) * size
        cx, cy = rng.uniform(0, size, 2)
        theta = rng.uniform(0, 2 * np.pi)
        dx, dy = xs - cx, ys - cy
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        shape = int(rng.integers(len(SHAPES)))
        mask = _shape_mask(SHAPES[shape], u, v, r)
        if rng.random() < 0.3:
            # plain: textured distractors (dots, noise) made separating objects from the
            # background as slow to learn as the shapes, and every model stayed near all-background
            texture, cls = "plain", 0
        else:
            k = int(rng.integers(len(TEXTURES)))
            texture, cls = TEXTURES[k], 1 + shape * len(TEXTURES) + k
        # the texture has its own orientation, independent of the shape's
        phi = rng.uniform(0, np.pi)
        tu = dx * np.cos(phi) + dy * np.sin(phi)
        tv = -dx * np.sin(phi) + dy * np.cos(phi)
        # a period under ~4 px aliases at this resolution: stripes and checks turn into
        # noise and the label could not be read from the image by any model
        period = max(4.0, rng.uniform(0.3, 0.6) * r)
        mix = _texture(texture, tu, tv, period, rng)
        a, b = _colours(rng, 1.2)
        image[mask] = (a + (b - a) * mix[..., None])[mask]
        label[mask] = cls

    image = image * rng.uniform(0.7, 1.3) + rng.normal(0, 0.02, image.shape)
    return np.clip(image, 0, 1).astype(np.float32), label


class ShapesDataset(Dataset):
    """Normalised CHW float tensors and HW int64 label maps."""

    classes = CLASSES
    palette = PALETTE
    num_classes = len(CLASSES)

    def __init__(self, split: str = "train", size: int = 64, length: int = 1024, seed: int = 0):
        # ``length`` is the size of an epoch; the training split answers any index >= 0, so
        # the trainer draws new scenes every epoch (FreshScenesSampler) and validation stays fixed
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r} for shapes; use train or val")
        if size < 32 or length < 1:
            raise ValueError(f"shapes needs image size >= 32 and at least one image (got {size}, {length})")
        self.split, self.size, self.length, self.seed = split, size, length, seed
        self.unlimited = split == "train"

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index < 0 or (index >= self.length and not self.unlimited):
            raise IndexError(index)
        image, label = generate(self.seed, self.split, index, self.size)
        image = (image - IMAGENET_MEAN) / IMAGENET_STD
        return torch.from_numpy(image.transpose(2, 0, 1).copy()), torch.from_numpy(label.astype(np.int64))
