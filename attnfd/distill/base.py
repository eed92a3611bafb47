"""The interface every distillation method satisfies.

A distiller is built from the student, the (frozen) teacher and the training config. Each
step the trainer calls ``teacher_targets`` on the teacher's logits and taps under
``torch.inference_mode`` (so nothing of the teacher side enters the student's graph), then
``forward`` with the student's logits and taps, those targets and the labels. ``forward``
returns named, unweighted loss parts; the trainer adds them up, scaled by the method's weight
and the alpha schedule. A distiller's own trainable modules (CBAMs, connectors) are its
parameters: the trainer optimises them at the head learning rate and checkpoints them.
"""

from __future__ import annotations

import torch
from torch import nn


class Distiller(nn.Module):
    name: str = ""

    def __init__(self, student: nn.Module, teacher: nn.Module, config):
        super().__init__()

    def teacher_targets(self, logits: torch.Tensor, taps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What ``forward`` needs of the teacher; runs under inference mode."""
        return {"logits": logits, **taps}

    def forward(
        self,
        logits: torch.Tensor,
        taps: dict[str, torch.Tensor],
        teacher: dict[str, torch.Tensor],
        labels: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError
