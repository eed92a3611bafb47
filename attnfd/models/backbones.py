"""torchvision backbones cut for DeepLabV3+: a low-level map, the last stage pre-ReLU, and
the map that feeds ASPP; on request also the earlier stages' pre-ReLU maps (``stage1`` ..
``stage3``, the taps Overhaul distils).

The output stride is set by dilation. torchvision's ``replace_stride_with_dilation`` works
only for Bottleneck ResNets and not at all for MobileNetV2, so one helper does it for every
backbone: the stride-2 convolutions of a stage become stride 1 and its 3x3 convolutions get
the stage's dilation.

Two variants reproduce the official AttnFD code (AmirMansurian/AttnFD, built on
jfzhang95/pytorch-deeplab-xception, ``modeling/backbone/``); the defaults are torchvision's:

- ``multi_grid``: a Bottleneck ResNet's layer4 is a multi-grid unit, its three blocks dilated
  1x, 2x and 4x the stage's dilation (2, 4, 8 at output stride 16; ``_make_MG_unit``). The
  official code has no multi-grid for BasicBlock ResNets, so ResNet-18/34 are unchanged.
- ``mobilenet_dilation="last_block"``: the official MobileNetV2 rule. Once the stride reached
  the output stride, the first block of each later group only loses its stride and keeps the
  current dilation; the rate grows after it. At output stride 16 only the last block (320
  channels) is dilated (by 2); ``"stage"`` (default) dilates features[14:18] by 2.
  ``fixed_padding``: each inverted residual pads its input explicitly (``fixed_padding``)
  before the whole block, the depthwise conv has no padding of its own, so the 1x1 expansion
  sees zeros at the border and its BN and ReLU6 turn them into non-zero values.
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


def _set_dilation(conv: nn.Conv2d, dilation: int, padding: int | None = None) -> None:
    conv.dilation = (dilation, dilation)
    conv.padding = (dilation, dilation) if padding is None else (padding, padding)


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
    def __init__(self, name: str, output_stride: int, weights: str | None = None, multi_grid: bool = False):
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
        if multi_grid and isinstance(net.layer4[0], Bottleneck):
            for grid, block in zip((1, 2, 4), net.layer4, strict=True):
                _set_dilation(block.conv2, grid * d32)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.layer4_body = net.layer4[:-1]
        self.layer4_last = net.layer4[-1]
        expansion = 4 if isinstance(self.layer4_last, Bottleneck) else 1
        self.low_channels = 64 * expansion
        self.out_channels = 512 * expansion
        self.stage_channels = {"stage1": 64 * expansion, "stage2": 128 * expansion, "stage3": 256 * expansion}

    def forward(self, x: torch.Tensor, stages: bool = False):
        """(low-level map, last stage pre-ReLU), and with ``stages`` a dict of the pre-ReLU
        outputs of layer1..layer3 as well (the same arithmetic either way)."""
        x = self.stem(x)
        if not stages:
            low = self.layer1(x)
            x = self.layer4_body(self.layer3(self.layer2(low)))
            return low, _block_pre_relu(self.layer4_last, x)
        taps = {}
        for name, stage in (("stage1", self.layer1), ("stage2", self.layer2), ("stage3", self.layer3)):
            taps[name] = _block_pre_relu(stage[-1], stage[:-1](x))
            x = F.relu(taps[name])
            if name == "stage1":
                low = x
        return low, _block_pre_relu(self.layer4_last, self.layer4_body(x)), taps

    def stage_batchnorm(self, name: str) -> nn.BatchNorm2d:
        """The BatchNorm whose output (plus the identity) is a stage tap."""
        block = getattr(self, f"layer{name[-1]}")[-1]
        return block.bn3 if isinstance(block, Bottleneck) else block.bn2

    @staticmethod
    def activate(tap: torch.Tensor) -> torch.Tensor:
        return F.relu(tap)


# torchvision's MobileNetV2 features[1:18] as the paper's groups (t, c, n, s): first index, n, s
MOBILENET_GROUPS = ((1, 1, 1), (2, 2, 2), (4, 3, 2), (7, 4, 2), (11, 3, 1), (14, 3, 2), (17, 1, 1))
# the blocks whose expansion (1x1 conv + BN, before ReLU6) is a stage tap, as the official
# code's MobileNetV2.get_bn_before_relu: strides 4, 8 and 16
MOBILENET_STAGE_BLOCKS = {"stage1": 4, "stage2": 7, "stage3": 14}


def _official_mobilenet_dilations(output_stride: int) -> dict[int, tuple[int, int]]:
    """Block index -> (stride, dilation) under the official code's rule (``MobileNetV2.__init__``)."""
    current, rate, plan = 2, 1, {}
    for first, n, s in MOBILENET_GROUPS:
        if current == output_stride:
            stride, dilation = 1, rate
            rate *= s
        else:
            stride, dilation = s, 1
            current *= s
        for i in range(first, first + n):
            plan[i] = (stride if i == first else 1, dilation)
    return plan


def _depthwise(block: nn.Module) -> nn.Conv2d:
    return next(m for m in block.conv.modules() if isinstance(m, nn.Conv2d) and m.groups > 1)


def _expand_with_tap(block: nn.Module, x: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One torchvision inverted residual (with an expansion), returning also its expansion's
    pre-ReLU6 map; ``pad`` > 0 pads the input first, as the official ``fixed_padding``."""
    inp = F.pad(x, (pad, pad, pad, pad)) if pad else x
    expand = block.conv[0]
    pre = expand[1](expand[0](inp))
    # torchvision's ReLU6 is in place; the tap must keep the pre-activation values
    out = block.conv[1:](F.relu6(pre))
    out = x + out if block.use_res_connect else out
    return out, (pre[..., pad:-pad, pad:-pad] if pad else pre)


class FixedPaddingInvertedResidual(nn.Module):
    """A torchvision inverted residual run as the official code runs it: the input padded by the
    depthwise conv's dilation on every side before the block, the depthwise conv unpadded. It
    holds the block's ``conv`` as its own, so state-dict keys do not change."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.conv = block.conv
        self.use_res_connect = block.use_res_connect
        depthwise = _depthwise(block)
        self.pad = depthwise.dilation[0]
        depthwise.padding = (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(F.pad(x, (self.pad,) * 4))
        return x + out if self.use_res_connect else out


class MobileNetV2Backbone(nn.Module):
    """features[:4] (stride 4, 24 channels) as low level; the last inverted residual
    (320 channels, linear bottleneck, so pre-ReLU by construction) as the tap. The final
    1x1 conv to 1280 channels is dropped, as DeepLabV3+ implementations do. The stage taps are
    the pre-ReLU6 expansions of blocks 4, 7 and 14 (144, 192, 576 channels), as the official
    code's ``extract_feature``."""

    def __init__(self, output_stride: int, weights: str | None = None, dilation_rule: str = "stage",
                 fixed_padding: bool = False):
        super().__init__()
        net = tvm.mobilenet_v2(weights=None)
        if weights:
            _load_weights(net, weights)
        features = net.features
        if dilation_rule == "last_block":
            for i, (stride, dilation) in _official_mobilenet_dilations(output_stride).items():
                depthwise = _depthwise(features[i])
                depthwise.stride = (stride, stride)
                _set_dilation(depthwise, dilation)
        elif dilation_rule == "stage":
            d16, d32 = _dilations(output_stride)
            if d16 > 1:
                _dilate(features[7:14], d16)
            _dilate(features[14:18], d32)
        else:
            raise ValueError(f"mobilenet dilation rule must be stage or last_block, got {dilation_rule!r}")
        self.pad = 0
        if fixed_padding:
            stage_pads = {i: _depthwise(features[i]).dilation[0] for i in MOBILENET_STAGE_BLOCKS.values()}
            for i in range(1, 18):
                if i not in MOBILENET_STAGE_BLOCKS.values():
                    features[i] = FixedPaddingInvertedResidual(features[i])
                else:
                    _depthwise(features[i]).padding = (0, 0)
            self.stage_pads = stage_pads
        else:
            self.stage_pads = {i: 0 for i in MOBILENET_STAGE_BLOCKS.values()}
        self.low = features[:4]
        self.high = features[4:18]
        self.low_channels = 24
        self.out_channels = 320
        self.stage_channels = {"stage1": 144, "stage2": 192, "stage3": 576}

    def forward(self, x: torch.Tensor, stages: bool = False):
        low = self.low(x)
        if not stages and not any(self.stage_pads.values()):
            return low, self.high(low)
        # blocks 4, 7 and 14 run step by step: their expansions are the stage taps, and under
        # fixed padding they pad their own input
        taps, h, start = {}, low, 4
        for name, index in MOBILENET_STAGE_BLOCKS.items():
            h = self.high[start - 4:index - 4](h)
            h, taps[name] = _expand_with_tap(self.high[index - 4], h, self.stage_pads[index])
            start = index + 1
        h = self.high[start - 4:](h)
        return (low, h, taps) if stages else (low, h)

    def stage_batchnorm(self, name: str) -> nn.BatchNorm2d:
        return self.high[MOBILENET_STAGE_BLOCKS[name] - 4].conv[0][1]

    @staticmethod
    def activate(tap: torch.Tensor) -> torch.Tensor:
        # a linear bottleneck feeds ASPP as it is
        return tap


def build_backbone(name: str, output_stride: int = 16, weights: str | None = None, multi_grid: bool = False,
                   mobilenet_dilation: str = "stage", fixed_padding: bool = False) -> nn.Module:
    if name in RESNETS:
        return ResNetBackbone(name, output_stride, weights, multi_grid=multi_grid)
    if name == "mobilenet_v2":
        return MobileNetV2Backbone(output_stride, weights, dilation_rule=mobilenet_dilation, fixed_padding=fixed_padding)
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
