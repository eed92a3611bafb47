"""The interface every distillation method satisfies.

A distiller is built from the student, the (frozen) teacher and the training config; its
options (``attnfd.distill.spec.method_options``: a dataclass of the options its module's
``DEFAULTS`` declares) are ``self.options``, and an ``Option`` attribute reads one of them.
Each step the
trainer calls ``teacher_targets`` on the teacher's logits and taps under
``torch.inference_mode`` (so nothing of the teacher side enters the student's graph), then
``forward`` with the student's logits and taps, those targets and the labels. ``forward``
returns named, unweighted loss parts; ``attnfd.distill.total.combine`` adds them up, scaled by
the method's weight and the alpha schedule. A distiller's own trainable modules (CBAMs,
connectors) are its parameters: the trainer optimises them at the head learning rate and
checkpoints them, and its buffers (margins, memory queues) are checkpointed with them.

How the parts are weighted over training is the distiller's to say, through two optional
methods consulted each step with the training progress in [0, 1]: ``loss_weights(progress)``
gives the weight of each part inside the method (a part it does not name weighs 1), and
``ce_weight(progress)`` the weight of the cross-entropy (1 unless the method reweights it, as
AICSD's adaptive loss weighting does).

Most feature methods compare the two sides tap by tap: ``attnfd.distill.per_tap``.
"""

from __future__ import annotations

import torch
from torch import nn

from attnfd.distill.spec import method_options


class Option:
    """One of a distiller's options as an attribute of its class, typed: ``temperature =
    Option(float)`` reads ``float(self.options.temperature)``."""

    def __init__(self, convert):
        self.convert = convert

    def __set_name__(self, owner, name: str) -> None:
        self.key = name

    def __get__(self, distiller, owner=None):
        if distiller is None:
            return self
        return self.convert(getattr(distiller.options, self.key))


class Distiller(nn.Module):
    name: str = ""

    def __init__(self, student: nn.Module, teacher: nn.Module, config):
        super().__init__()
        self.options = method_options(self.name, config)

    def teacher_targets(self, logits: torch.Tensor, taps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What ``forward`` needs of the teacher; runs under inference mode. By default its
        logits: a method that reads the teacher's taps names them (the trainer clones every
        target out of inference mode, so a target nobody reads costs memory)."""
        return {"logits": logits}

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
