"""The shape most feature methods share: one loss part per chosen tap, the method's
``pair_loss`` between the student's map and the teacher's at that tap.

A method says which taps it reads (the ``layers`` option by default, ``chosen_taps``), how a
tap becomes the map it compares (``teacher_map`` and ``student_map``: by default the tap before
or after its ReLU as the method's ``relu`` option says, the student's through a connector when
the method has them) and the distance between the two maps (``pair_loss``). The student's map
is brought to the teacher's spatial size first, unless the method compares maps of any size
(``match_size = False``). The part of tap ``k`` is named ``<method>.<k>``.
"""

from __future__ import annotations

import torch
from torch import nn

from attnfd.distill.base import Distiller
from attnfd.distill.common import activate, resize_to, tap_connectors
from attnfd.names import STAGE_TAPS


class PerTapDistiller(Distiller):
    # the attribute holding each tap's connector (common.connector) to the teacher's channels,
    # or None when the maps are compared as they are. It names the checkpoint's keys, and the
    # trainer's connector_schedule acts on the ones called "connectors"
    connectors_name: str | None = None
    match_size = True

    def __init__(self, student: nn.Module, teacher: nn.Module, config):
        super().__init__(student, teacher, config)
        self.layers = self.chosen_taps(config)
        # a method without the option reads its taps before the ReLU
        self.relu = bool(getattr(self.options, "relu", False))
        if any(k in STAGE_TAPS for k in self.layers):
            # the models emit the backbone's stage taps only once asked to
            student.require_stage_taps()
            teacher.require_stage_taps()
        if self.connectors_name is not None:
            connectors = tap_connectors(self.layers, student.tap_channels, teacher.tap_channels)
            setattr(self, self.connectors_name, connectors)

    def chosen_taps(self, config) -> tuple[str, ...]:
        return tuple(self.options.layers)

    def teacher_map(self, tap: str, x: torch.Tensor) -> torch.Tensor:
        return activate(x, self.relu)

    def student_map(self, tap: str, x: torch.Tensor) -> torch.Tensor:
        x = activate(x, self.relu)
        if self.connectors_name is None:
            return x
        return getattr(self, self.connectors_name)[tap](x)

    def pair_loss(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """The unweighted loss between the student's map and the teacher's at one tap."""
        raise NotImplementedError

    def teacher_targets(self, logits, taps):
        return {k: self.teacher_map(k, taps[k]) for k in self.layers}

    def forward(self, logits, taps, teacher, labels):
        parts = {}
        for k in self.layers:
            target = teacher[k]
            student = self.student_map(k, taps[k])
            if self.match_size:
                student = resize_to(student, target.shape[-2:])
            parts[f"{self.name}.{k}"] = self.pair_loss(student, target)
        return parts
