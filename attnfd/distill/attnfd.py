"""AttnFD: distil CBAM-refined feature maps (Mansourian et al., paper eqs. 1-6).

Per chosen tap k, the student map goes through its own CBAM and a 1x1 conv + BN connector
to the teacher's channels, is resized to the teacher's map when sizes differ, and both
sides are normalised; the loss is the squared distance between them, summed over taps.

Where the paper and the official code (AmirMansurian/AttnFD) differ, both are options:

- ``teacher_gate``: ``learned`` (paper: the teacher trained with a CBAM on each tap in its
  forward path, frozen with it), ``parameter_free`` (the official code's unused teacher
  mode) or ``untrained`` (the official code as released: a random learnable CBAM that is
  never optimised);
- ``norm``: ``channel`` (paper eq. 5, each pixel's vector unit length; the loss is the mean
  over pixels of the squared distance, in [0, 4] per tap) or ``tensor`` (official code:
  each map divided by the L2 norm of the whole batch tensor, squared distance summed and
  divided by the batch size; it depends on the batch size);
- ``tap_relu``: ``pre`` (paper) or ``post`` (official code for encoder and decoder).

The official code's training choices are options too (``recipe=official`` sets them):
``connector_schedule=first_epoch`` (the trainer optimises only the connectors in epoch 0,
then freezes them), ``teacher_mode=train`` (the teacher's BN on batch statistics, Dropout(0.5)
active before its decoder tap), ``train_student_channel_mlp=false`` (the student CBAMs'
channel MLP stays at its random init; read here), ``ce_batch_average`` and ``alpha=2`` with
``norm=tensor`` for the official loss scale ``CE / B + attn_lambda * sum / B``.

Dropout: the student's decoder has Dropout(0.5) between its two convs, so in train mode the
decoder tap is stochastic and two forwards give different taps, as in the official code; the
teacher's decoder tap is stochastic only with ``teacher_mode=train``.

Where the public code differs (AmirMansurian/AttnFD at b9ee23c; methods.md section 2.1):

- ``distiller.py``: the taps are layer4 pre-ReLU, ASPP and decoder post-ReLU (``tap_relu``),
  the normalisation is over the whole batch tensor (``norm=tensor``) and the loss is
  ``attn_lambda * sum / B`` with ``attn_lambda = 2`` (the recipe's alpha); the teacher side
  has no ``no_grad``/``detach`` (gradients reach the teacher and are discarded: this only
  costs time and is not reproduced).
- ``cbam.py``: the spatial gate pools [max, mean] (here [mean, max]) and follows its 7x7
  conv (no bias) with a BatchNorm (here a conv with bias, eq. 4); the converter
  (``attnfd.models.convert``) folds that BN into the conv, exact in eval mode. Every CBAM is
  the learnable ``model='student'`` kind, including the teacher's, which is never optimised
  (``teacher_gate=untrained``, or ``learned`` on a converted official checkpoint to use its
  stored CBAM weights); the parameter-free branch is dead code (``parameter_free``).
- ``modeling/deeplab.py`` ``get_1x_lr_params``/``get_10x_lr_params``: only Conv2d and BN
  parameters are optimised, so the student's channel MLP (``nn.Linear``) never learns
  (``train_student_channel_mlp``); the student backbone CBAM learns at 1x, the ASPP and
  decoder CBAMs at 10x (here all at the head rate).
- ``train_kd.py``: epoch 0 uses ``init_optimizer`` over the connectors only, and from epoch 1
  the connectors are left out of the optimiser (``connector_schedule``); ``t_net.train()``
  (``teacher_mode``); the model saved is the best val epoch (``model_best.pth.tar``; the
  analysis reports the best epoch next to the last).
- the backbone and head details (multi-grid layer4, MobileNetV2 dilation and padding,
  ``align_corners=True``) are the model options of ``attnfd.models``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnfd.cbam import CBAM, ParameterFreeCBAM
from attnfd.distill import register_distiller
from attnfd.distill.common import tap_connectors
from attnfd.distill.per_tap import PerTapDistiller
from attnfd.errors import ConfigError
from attnfd.models.deeplabv3plus import STAGE_TAPS

# read without importing this module (attnfd.distill.methods): a literal only
DEFAULTS = {
    "weight": 1.0,
    "reduction": "per tap: norm=channel, mean over pixels of the squared distance of unit vectors (0..4); "
    "norm=tensor, summed squared distance / B",
    "source": "paper eq. 6 (its weight is alpha: 1 VOC, 10 Cityscapes); options are config fields",
}


def normalise(x: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "channel":
        return F.normalize(x, dim=1, eps=1e-12)
    return x / x.flatten().norm(p=2).clamp_min(1e-12)


def attention_distance(student: torch.Tensor, teacher: torch.Tensor, norm: str) -> torch.Tensor:
    """Squared distance between two normalised refined maps of the same shape."""
    diff = (normalise(student, norm) - teacher).pow(2)
    if norm == "channel":
        return diff.sum(dim=1).mean()
    return diff.sum() / student.shape[0]


@register_distiller
class AttnFD(PerTapDistiller):
    name = "attnfd"

    def __init__(self, student: nn.Module, teacher: nn.Module, config):
        super().__init__(student, teacher, config)
        self.norm = config.norm
        self.post_relu = config.tap_relu == "post"
        s_ch, t_ch = student.tap_channels, teacher.tap_channels
        self.student_gates = nn.ModuleDict({k: CBAM(s_ch[k]) for k in self.layers})
        if not config.train_student_channel_mlp:
            for gate in self.student_gates.values():
                gate.channel_gate.requires_grad_(False)
        # built after the gates (not by PerTapDistiller), so that a seed draws the same weights
        self.connectors = tap_connectors(self.layers, s_ch, t_ch)
        if config.teacher_gate == "learned":
            if getattr(teacher, "gates", None) is None:
                raise ConfigError("teacher_gate=learned needs a teacher trained with tap_gates=True")
            stages = [k for k in self.layers if k in STAGE_TAPS]
            if stages:
                raise ConfigError(f"teacher_gate=learned: the teacher has no gates on {', '.join(stages)}; "
                                  "use teacher_gate=untrained or parameter_free with stage taps")
            # the teacher's own gates: held outside the module tree so they are neither
            # optimised nor saved twice (they live in the teacher's checkpoint)
            self._teacher_gates = {k: teacher.gates[k] for k in self.layers}
        elif config.teacher_gate == "parameter_free":
            self._teacher_gates = {k: ParameterFreeCBAM() for k in self.layers}
        else:
            self.untrained_teacher_gates = nn.ModuleDict({k: CBAM(t_ch[k]) for k in self.layers})
            self.untrained_teacher_gates.requires_grad_(False)
            self._teacher_gates = dict(self.untrained_teacher_gates.items())

    def chosen_taps(self, config) -> tuple[str, ...]:
        # AttnFD's options are config fields
        return tuple(config.layers)

    def _tap(self, name: str, x: torch.Tensor) -> torch.Tensor:
        # the official code takes ASPP and decoder after their ReLU, the backbone taps before
        return F.relu(x) if self.post_relu and name in ("encoder", "decoder") else x

    def teacher_map(self, tap, x):
        return normalise(self._teacher_gates[tap](self._tap(tap, x)), self.norm)

    def student_map(self, tap, x):
        return self.connectors[tap](self.student_gates[tap](self._tap(tap, x)))

    def pair_loss(self, student, teacher):
        return attention_distance(student, teacher, self.norm)

    def refined(self, tap: str, student: torch.Tensor, teacher: torch.Tensor) -> dict[str, torch.Tensor]:
        """Both sides' maps at one tap, raw and CBAM-refined, before the connector and the
        normalisation: what the paper's Fig. 1 pictures."""
        s, t = self._tap(tap, student), self._tap(tap, teacher)
        return {"teacher raw": t, "teacher refined": self._teacher_gates[tap](t),
                "student raw": s, "student refined": self.student_gates[tap](s)}

    def train(self, mode: bool = True):
        super().train(mode)
        # frozen teacher-side gates never leave eval mode
        for gate in self._teacher_gates.values():
            gate.eval()
        return self
