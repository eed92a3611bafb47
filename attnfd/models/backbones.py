"""torchvision backbones cut for DeepLabV3+: a low-level map, the last stage pre-ReLU, and
the map that feeds ASPP.

The output stride is set by dilation. torchvision's ``replace_stride_with_dilation`` works
only for Bottleneck ResNets and not at all for MobileNetV2, so one helper does it for every
backbone: the stride-2 convolutions of a stage become stride 1 and its 3x3 convolutions get
the stage's dilation.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm
from torchvision.models.resnet import BasicBlock, Bottleneck

from attnfd.names import BACKBONES

RESNETS = {
    "resnet18": tvm.resnet18,
    "resnet34": tvm.resnet34,
    "resnet50": tvm.resnet50,
    "resnet101": tvm.resnet101,
}
assert set(RESNETS) | {"mobilenet_v2"} == set(BACKBONES)


def _dilate(stage: nn.Module, dilation: int) -> None:
    """Remove the stage's downsampling and dilate its 3x3 convolutions instead."""
    for module in stage.modules():
        if not isinstance(module, nn.Conv2d):
            continue
        if module.stride == (2, 2):
            module.stride = (1, 1)
        if module.kernel_size == (3, 3):
            module.dilation = (dilation, dilation)
            module.padding = (dilation, dilation)


def _dilations(output_stride: int) -> tuple[int, int]:
    """Dilation of the stride-16 stage and of the stride-32 stage."""
    if output_stride == 16:
        return 1, 2
    if output_stride == 8:
        return 2, 4
    raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")


def _load_weights(model: nn.Module, path: str | Path) -> None:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights not found: {path}")
    from attnfd.checkpoint import CheckpointError, first_line

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (a damaged file surfaces as any of a dozen error types)
        raise CheckpointError(f"cannot read backbone weights {path}: {first_line(err)}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"backbone weights {path} hold a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"backbone weights {path} do not fit this backbone: {first_line(err)}") from None


def _block_pre_relu(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A torchvision residual block's output before its final ReLU (the blocks apply it inline)."""
    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    if isinstance(block, Bottleneck):
        out = block.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    elif isinstance(block, BasicBlock):
        out = block.bn2(block.conv2(out))
    else:
        raise TypeError(f"unsupported residual block {type(block).__name__}")
    return out + identity


class ResNetBackbone(nn.Module):
    def __init__(self, name: str, output_stride: int, weights: str | None = None):
        super().__init__()
        # from scratch, each residual block starts as the identity (last BN's scale 0): a
        # random ResNet-101 otherwise learns far more slowly per step than a ResNet-18 (on
        # shapes, val mIoU 0.17 against 0.29 after the same 1024 steps)
        net = RESNETS[name](weights=None, zero_init_residual=not weights)
        if weights:
            _load_weights(net, weights)
        d16, d32 = _dilations(output_stride)
        if d16 > 1:
            _dilate(net.layer3, d16)
        _dilate(net.layer4, d32)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.layer4_body = net.layer4[:-1]
        self.layer4_last = net.layer4[-1]
        expansion = 4 if isinstance(self.layer4_last, Bottleneck) else 1
        self.low_channels = 64 * expansion
        self.out_channels = 512 * expansion

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layer1(self.stem(x))
        x = self.layer4_body(self.layer3(self.layer2(low)))
        return low, _block_pre_relu(self.layer4_last, x)

    @staticmethod
    def activate(tap: torch.Tensor) -> torch.Tensor:
        return F.relu(tap)


class MobileNetV2Backbone(nn.Module):
    """features[:4] (stride 4, 24 channels) as low level; the last inverted residual
    (320 channels, linear bottleneck, so pre-ReLU by construction) as the tap. The final
    1x1 conv to 1280 channels is dropped, as DeepLabV3+ implementations do."""

    def __init__(self, output_stride: int, weights: str | None = None):
        super().__init__()
        net = tvm.mobilenet_v2(weights=None)
        if weights:
            _load_weights(net, weights)
        d16, d32 = _dilations(output_stride)
        features = net.features
        if d16 > 1:
            _dilate(features[7:14], d16)
        _dilate(features[14:18], d32)
        self.low = features[:4]
        self.high = features[4:18]
        self.low_channels = 24
        self.out_channels = 320

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.low(x)
        return low, self.high(low)

    @staticmethod
    def activate(tap: torch.Tensor) -> torch.Tensor:
        # a linear bottleneck feeds ASPP as it is
        return tap


def build_backbone(name: str, output_stride: int = 16, weights: str | None = None) -> nn.Module:
    if name in RESNETS:
        return ResNetBackbone(name, output_stride, weights)
    if name == "mobilenet_v2":
        return MobileNetV2Backbone(output_stride, weights)
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
