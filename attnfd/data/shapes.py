"""``shapes``: the embedded benchmark, generated on the fly, deterministic by seed.

A scene is a textured surface (stripes, checks or dots, in two random colours, at a random
period and orientation) with 1-3 plain objects on it (disks, squares, triangles, each one
flat random colour). An object's class is the surface it lies on: ``on stripes``,
``on checks``, ``on dots``; the surface itself is background. So no pixel of an object says
its class, nor does its neighbourhood: the object is flat, and its interior is up to a
quarter of the image away from the surface that decides. A model must see the object as a
region and read the context around it; a per-pixel classifier and a model with a 7 px
receptive field score far lower (README, "The embedded benchmark").

Why this design and not the earlier shape x texture classes: from scratch, on a CPU budget,
no DeepLabV3+ learnt a shape cue at this resolution (val mIoU 0.26 after 8k images, the
teacher's shape classes at IoU 0.01-0.38), while context over a region is learnt steadily,
and more training keeps paying off: the learning curve a teacher-student gap needs.

Sample ``i`` of split ``s`` is drawn from ``numpy.random.default_rng([seed, split_id, i])``,
so the set needs no files, is the same on every machine and has no size limit.
"""

from __future__ import annotations

import numpy as np

SURFACES = ("stripes", "checks", "dots")
OBJECTS = ("disk", "square", "triangle")
CLASSES = ("background",) + tuple(f"on {s}" for s in SURFACES)
PALETTE = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200))
SPLIT_IDS = {"train": 0, "val": 1}


def _object_mask(kind: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """u, v: pixel coordinates in the object's rotated frame, centred on it."""
    if kind == "disk":
        return u * u + v * v <= r * r
    if kind == "square":
        return (np.abs(u) <= 0.8 * r) & (np.abs(v) <= 0.8 * r)
    inside = np.ones_like(u, dtype=bool)  # an equilateral triangle as three half-planes
    for k in range(3):
        angle = np.pi / 2 + k * 2 * np.pi / 3
        inside &= u * np.cos(angle) + v * np.sin(angle) <= 0.73 * r
    return inside


def _surface(kind: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """A map in {0, 1} that mixes the surface's two colours."""
    if kind == "stripes":
        return (np.sin(2 * np.pi * u / period) > 0).astype(np.float32)
    if kind == "checks":
        return ((np.floor(u / (period / 2)) + np.floor(v / (period / 2))) % 2).astype(np.float32)
    return ((np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period)) > 0.5).astype(np.float32)


def _colour_pair(rng: np.random.Generator, distance: float) -> tuple[np.ndarray, np.ndarray]:
    a = rng.random(3).astype(np.float32)
    b = rng.random(3).astype(np.float32)
    # the two colours of a surface differ (L1) so that its texture can be seen at all
    while np.abs(a - b).sum() < distance:
        b = rng.random(3).astype(np.float32)
    return a, b


def generate(seed: int, split: str, index: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """One scene: an HxWx3 float32 image in [0, 1] and an HxW uint8 label map."""
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    surface = int(rng.integers(len(SURFACES)))
    phi = rng.uniform(0, np.pi)
    u = xs * np.cos(phi) + ys * np.sin(phi)
    v = -xs * np.sin(phi) + ys * np.cos(phi)
    # a period of 5 px or more: finer textures alias into noise at this resolution
    mix = _surface(SURFACES[surface], u, v, rng.uniform(5, 9))
    c0, c1 = _colour_pair(rng, 0.5)
    image = c0 + (c1 - c0) * mix[..., None]
    label = np.zeros((size, size), dtype=np.uint8)

    placed: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(1, 4))):
        # objects do not touch: each one's class must be read from the surface, not a neighbour
        for _attempt in range(20):
            r = rng.uniform(0.15, 0.25) * size
            cx, cy = rng.uniform(0.1 * size, 0.9 * size, 2)
            if all((cx - px) ** 2 + (cy - py) ** 2 > (1.1 * (r + pr)) ** 2 for px, py, pr in placed):
                break
        else:
            continue
        placed.append((cx, cy, r))
        theta = rng.uniform(0, 2 * np.pi)
        dx, dy = xs - cx, ys - cy
        mask = _object_mask(OBJECTS[int(rng.integers(len(OBJECTS)))], dx * np.cos(theta) + dy * np.sin(theta),
                            -dx * np.sin(theta) + dy * np.cos(theta), r)
        image[mask] = rng.random(3).astype(np.float32)
        label[mask] = 1 + surface

    image = image * rng.uniform(0.8, 1.2) + rng.normal(0, 0.03, image.shape)
    return np.clip(image, 0, 1).astype(np.float32), label

