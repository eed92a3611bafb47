"""Learning-rate and alpha schedules as functions of training progress in [0, 1]."""

from __future__ import annotations

import math


def lr_factor(schedule: str, progress: float) -> float:
    """Multiplier of the base learning rate: cosine annealing to 0 (paper) or poly 0.9
    (the official DeepLabV3+ code), both per iteration."""
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "poly":
        return (1.0 - progress) ** 0.9
    raise ValueError(f"unknown lr schedule {schedule!r}")


def alpha_at(alpha: float, schedule: str, progress: float, decay_start: float = 0.5) -> float:
    """The distillation weight at a point of training.

    ``constant`` keeps ``alpha``. The decay variants (the paper's "alpha-decay", section
    4.5) hold ``alpha`` until ``decay_start`` and then bring it down by the end of training:
    ``linear`` and ``cosine`` to 0, ``step`` to a tenth at once.
    """
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "constant" or progress < decay_start:
        return alpha
    q = (progress - decay_start) / (1.0 - decay_start)
    if schedule == "linear":
        return alpha * (1.0 - q)
    if schedule == "cosine":
        return alpha * 0.5 * (1.0 + math.cos(math.pi * q))
    if schedule == "step":
        return alpha * 0.1
    raise ValueError(f"unknown alpha schedule {schedule!r}")
