"""Overhaul of feature distillation (Heo et al., ICCV 2019) on the pre-ReLU taps: by default
the backbone's stages 1-3, its last stage, ASPP and the decoder, as clovaai's segmentation code.

The student's pre-ReLU tap goes through a connector (1x1 conv + BN to the teacher's
channels). The teacher's pre-ReLU tap t is raised to a per-channel margin m, the mean of the
negative responses expected from the teacher's BatchNorm before the tap (for BN output
N(beta, gamma^2): m = E[x | x < 0] = beta - |gamma| phi(beta/gamma) / Phi(-beta/gamma), or
-3|gamma| when almost no response is negative). The partial L2 distance skips positions
where the student is already below a non-positive target, as a ReLU would hide them:

    L_overhaul,k = sum over (B, C, H, W) of (s - t')^2 * [(s > t') or (t' > 0)] / B,
    t' = max(t, m)

The loss weights follow clovaai's segmentation code (``Segmentation/distiller.py``,
``train_with_distillation.py``): ``loss_distill.sum() / B * 1e-5`` (the method weight here)
with per-layer dividers ``[8, 4, 2, 1, 1, 16]`` for ResNet layer1-3, layer4, ASPP and the
decoder (``loss_weights``). ``overhaul.layers=backbone+encoder+decoder`` keeps the three taps
the other methods share. The margin comes from the last BatchNorm before each tap: each ResNet
stage's last block's final BN (as ``get_bn_before_relu``; the tap also adds the identity
branch, which the margin ignores, as in the original); for MobileNetV2 the expansion BN of
blocks 4, 7 and 14 (the stage taps are those expansions, as its ``extract_feature``) and the
last projection BN; the ASPP projection BN and the decoder's last BN.

Where the public code differs (clovaai/overhaul-distillation, ``Segmentation/``):

- ``train_with_distillation.py``: the teacher stays in train mode (BN batch statistics, no
  gradient, features detached; ``teacher_mode=train`` here), and the connectors train alone in
  epoch 0 (``init_optimizer``), then jointly with the student at 10x the learning rate. Here
  they train from the first step at the head learning rate (10x the backbone's on VOC and
  Cityscapes). ``connector_schedule=first_epoch`` is AttnFD's official schedule (connectors
  frozen after epoch 0), not Overhaul's.
- ``modeling/``: the official DeepLab (multi-grid layer4, ``align_corners=True``,
  MobileNetV2 with explicit padding) is ``recipe=official``'s architecture; the CE is
  batch-averaged there too (``ce_batch_average``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnfd.distill import register_distiller
from attnfd.distill.per_tap import PerTapDistiller
from attnfd.models.deeplabv3plus import STAGE_TAPS

# read without importing this module (attnfd.distill.methods): a literal only
DEFAULTS = {
    "weight": 1e-5,
    "reduction": "per tap: partial L2 summed over all elements / B; part weights 1/divider "
    "(stage1 8, stage2 4, stage3 2, backbone 1, encoder 1, decoder 16)",
    "source": "clovaai overhaul-distillation Segmentation: loss_distill.sum() / B * 1e-5, dividers [8, 4, 2, 1, 1, 16]",
    "options": {"layers": ("stage1", "stage2", "stage3", "backbone", "encoder", "decoder")},
    "table_row": 5,
}

DIVIDERS = {"stage1": 8.0, "stage2": 4.0, "stage3": 2.0, "backbone": 1.0, "encoder": 1.0, "decoder": 16.0}


def _last_batchnorm(module: nn.Module) -> nn.BatchNorm2d:
    norms = [m for name, m in module.named_modules() if isinstance(m, nn.BatchNorm2d) and "downsample" not in name]
    if not norms:
        raise ValueError(f"no BatchNorm2d in {type(module).__name__}")
    return norms[-1]


def tap_batchnorm(model: nn.Module, tap: str) -> nn.BatchNorm2d:
    """The BatchNorm whose output (plus, for ResNet, the identity) is the tap."""
    if tap in STAGE_TAPS:
        return model.backbone.stage_batchnorm(tap)
    return _last_batchnorm({"backbone": model.backbone, "encoder": model.aspp, "decoder": model.decoder}[tap])


def margin_from_batchnorm(bn: nn.BatchNorm2d) -> torch.Tensor:
    """Per-channel E[x | x < 0] for x ~ N(beta, gamma^2), as a (1, C, 1, 1) tensor."""
    std = bn.weight.detach().double().abs().clamp_min(1e-12)
    mean = bn.bias.detach().double()
    below = torch.special.ndtr(-mean / std)
    density = torch.exp(-0.5 * (mean / std) ** 2) / math.sqrt(2 * math.pi)
    margin = torch.where(below > 1e-3, mean - std * density / below.clamp_min(1e-300), -3 * std)
    return margin.float().view(1, -1, 1, 1)


def partial_l2(student: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    s, t = student.float(), target.float()
    mask = (s > t) | (t > 0)
    return ((s - t).pow(2) * mask).sum() / s.shape[0]


@register_distiller
class Overhaul(PerTapDistiller):
    name = "overhaul"
    connectors_name = "connectors"
    pair_loss = staticmethod(partial_l2)

    def __init__(self, student: nn.Module, teacher: nn.Module, config):
        super().__init__(student, teacher, config)
        for k in self.layers:
            self.register_buffer(f"margin_{k}", margin_from_batchnorm(tap_batchnorm(teacher, k)))

    def teacher_map(self, tap, x):
        return torch.maximum(x.float(), getattr(self, f"margin_{tap}"))

    def loss_weights(self, progress: float) -> dict[str, float]:
        return {f"overhaul.{k}": 1.0 / DIVIDERS[k] for k in self.layers}
