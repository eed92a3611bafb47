"""Segmentation metrics from one confusion matrix, ignoring label 255."""

from __future__ import annotations

import torch

from attnfd.names import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "ConfusionMatrix"]


class ConfusionMatrix:
    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, labels: torch.Tensor, predictions: torch.Tensor) -> None:
        """Rows are true classes, columns predicted ones."""
        labels, predictions = labels.flatten().cpu(), predictions.flatten().cpu()
        keep = (labels != IGNORE_INDEX) & (labels >= 0) & (labels < self.num_classes)
        index = labels[keep] * self.num_classes + predictions[keep]
        self.matrix += torch.bincount(index, minlength=self.num_classes**2).reshape(self.num_classes, -1)

    def compute(self) -> dict:
        m = self.matrix.double()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        # a class absent from both labels and predictions has no IoU, not 0
        iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
        total = m.sum()
        return {
            "miou": float(iou.nanmean()) if (union > 0).any() else float("nan"),
            "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
            "per_class_iou": [float(v) for v in iou],
        }
