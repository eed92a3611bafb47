"""Small pieces several distillation methods share: taps, connectors, resizing, pooling, KL."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def activate(x: torch.Tensor, relu: bool) -> torch.Tensor:
    """A tap as the method reads it: the pre-ReLU map, or the map after its ReLU."""
    return F.relu(x) if relu else x


def resize_to(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Bring a student map to the teacher map's spatial size (they differ only when the two
    backbones round odd input sizes differently)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def connector(cin: int, cout: int) -> nn.Sequential:
    """1x1 conv + BN from the student's channels to the teacher's, initialised as the Overhaul
    code does (conv N(0, sqrt(2 / (k*k*cout))), BN weight 1, bias 0)."""
    conv = nn.Conv2d(cin, cout, 1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(conv, nn.BatchNorm2d(cout))


def tap_connectors(taps, student_channels: dict[str, int], teacher_channels: dict[str, int]) -> nn.ModuleDict:
    """A ``connector`` per tap, from the student's channels at that tap to the teacher's."""
    return nn.ModuleDict({k: connector(student_channels[k], teacher_channels[k]) for k in taps})


def pool_to_pixels(x: torch.Tensor, max_pixels: int) -> torch.Tensor:
    """Average-pool a map so that it has at most ``max_pixels`` positions; pairwise (HW x HW)
    similarity maps stay within memory at any input size."""
    h, w = x.shape[-2:]
    if max_pixels <= 0 or h * w <= max_pixels:
        return x
    k = math.ceil(math.sqrt(h * w / max_pixels))
    while math.ceil(h / k) * math.ceil(w / k) > max_pixels:
        k += 1
    return F.avg_pool2d(x, kernel_size=k, stride=k, ceil_mode=True)


def pixel_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) of the class distributions at each pixel, summed over classes:
    a (B, H, W) map. Computed in float32."""
    log_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="none").sum(dim=1)


def zero_like_graph(x: torch.Tensor) -> torch.Tensor:
    """A zero loss that still belongs to the student's graph (so backward has a path)."""
    return x.float().sum() * 0.0
