"""The interface every distillation method satisfies.

A distiller is built from the student, the (frozen) teacher and the training config. Each
step the trainer calls ``teacher_targets`` on the teacher's logits and taps under
``torch.inference_mode`` (so nothing of the teacher side enters the student's graph), then
``forward`` with the student's logits and taps, those targets and the labels. ``forward``
returns named, unweighted loss parts; the trainer adds them up, scaled by the method's weight
and the alpha schedule. A distiller's own trainable modules (CBAMs, connectors) are its
parameters: the trainer optimises them at the head learning rate and checkpoints them, and its
buffers (margins, memory queues) are checkpointed with them.

How the parts are weighted over training is the distiller's to say, through two optional
methods the trainer consults each step with the training progress in [0, 1]:
``loss_weights(progress)`` gives the weight of each part inside the method (a part it does not
name weighs 1), and ``ce_weight(progress)`` the weight of the cross-entropy (1 unless the
method reweights it, as AICSD's adaptive loss weighting does). The total is
``prod(ce_weight) * CE + alpha(t) * sum_m w_m * sum_p loss_weights[p] * part_p``; the defaults
and reductions are in ``attnfd.distill.defaults``.
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

    def loss_weights(self, progress: float) -> dict[str, float]:
        """Weight of each loss part at this point of training; parts not named weigh 1."""
        return {}

    def ce_weight(self, progress: float) -> float:
        """Weight of the cross-entropy at this point of training."""
        return 1.0
