"""DeepLabV3+ (Chen et al., 2018) with the three feature taps that distillation reads.

One forward call returns the logits (at input size) and a dict of taps, each taken before
its ReLU:

- ``backbone``: the last backbone stage (ResNet layer4 / MobileNetV2's last bottleneck);
- ``encoder``: the ASPP projection after its BatchNorm;
- ``decoder``: the second decoder conv after its BatchNorm, just before the classifier.

With ``tap_gates=True`` a CBAM sits on each tap in the forward path, so the gates train
with the model (the AttnFD paper's learned teacher attention). The taps stay the raw maps;
the gates are exposed as ``model.gates`` for the distiller to apply. With
``tap_gates_inline=False`` the gates are only held, not applied in the forward path: the
official code's layout, whose CBAMs sit beside the network (``extract_feature`` applies them,
``forward`` does not), as a converted official checkpoint carries them.

A distiller that reads the backbone's earlier stages calls ``model.require_stage_taps()``;
from then on the taps also hold ``stage1`` .. ``stage3`` (``STAGE_TAPS``), pre-ReLU, and
``tap_channels`` lists them.

``align_corners`` is used by every bilinear upsampling (ASPP pooling, decoder, final
upsample): False by default, True in the official code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attnfd.cbam import CBAM
from attnfd.models.backbones import build_backbone
from attnfd.names import ALL_TAPS, STAGE_TAPS, TAPS  # noqa: F401  (re-exported by attnfd.models)

LOW_LEVEL_CHANNELS = 48


def _conv_bn(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> list[nn.Module]:
    padding = 0 if kernel == 1 else dilation
    return [nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False), nn.BatchNorm2d(cout)]


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int, rates: tuple[int, ...], align_corners: bool = False):
        super().__init__()
        self.align_corners = align_corners
        self.branches = nn.ModuleList(
            [nn.Sequential(*_conv_bn(cin, cout, 1), nn.ReLU(inplace=True))]
            + [nn.Sequential(*_conv_bn(cin, cout, 3, r), nn.ReLU(inplace=True)) for r in rates]
        )
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), *_conv_bn(cin, cout, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(*_conv_bn(cout * (len(rates) + 2), cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(self.image_pool(x), size=x.shape[-2:], mode="bilinear", align_corners=self.align_corners)
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


class Decoder(nn.Module):
    def __init__(self, low_channels: int, channels: int, align_corners: bool = False):
        super().__init__()
        self.align_corners = align_corners
        self.low_project = nn.Sequential(*_conv_bn(low_channels, LOW_LEVEL_CHANNELS, 1), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(
            *_conv_bn(channels + LOW_LEVEL_CHANNELS, channels, 3),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            *_conv_bn(channels, channels, 3),
        )

    def forward(self, encoded: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        encoded = F.interpolate(encoded, size=low.shape[-2:], mode="bilinear", align_corners=self.align_corners)
        return self.fuse(torch.cat([encoded, self.low_project(low)], dim=1))


class DeepLabV3Plus(nn.Module):
    def __init__(
        self,
        backbone: str,
        num_classes: int,
        output_stride: int = 16,
        head_channels: int = 256,
        aspp_rates: tuple[int, ...] = (6, 12, 18),
        backbone_weights: str | None = None,
        tap_gates: bool = False,
        multi_grid: bool = False,
        mobilenet_dilation: str = "stage",
        fixed_padding: bool = False,
        align_corners: bool = False,
        tap_gates_inline: bool = True,
    ):
        super().__init__()
        self.backbone = build_backbone(backbone, output_stride, backbone_weights, multi_grid=multi_grid,
                                       mobilenet_dilation=mobilenet_dilation, fixed_padding=fixed_padding)
        self.align_corners = align_corners
        self.stage_taps = False
        # rates are given for output stride 16; at 8 the maps are twice as large
        rates = tuple(r * (16 // output_stride) for r in aspp_rates)
        self.aspp = ASPP(self.backbone.out_channels, head_channels, rates, align_corners)
        # not inplace: the ReLU input is a tap that must stay pre-ReLU
        self.aspp_out = nn.Sequential(nn.ReLU(), nn.Dropout(0.5))
        self.decoder = Decoder(self.backbone.low_channels, head_channels, align_corners)
        self.classifier = nn.Sequential(nn.ReLU(), nn.Dropout(0.1), nn.Conv2d(head_channels, num_classes, 1))
        self._tap_channels = {"backbone": self.backbone.out_channels, "encoder": head_channels, "decoder": head_channels}
        self.gates = nn.ModuleDict({k: CBAM(c) for k, c in self._tap_channels.items()}) if tap_gates else None
        self.tap_gates_inline = tap_gates_inline

    @property
    def tap_channels(self) -> dict[str, int]:
        if self.stage_taps:
            return {**self.backbone.stage_channels, **self._tap_channels}
        return dict(self._tap_channels)

    def require_stage_taps(self) -> None:
        """From now on the forward also returns the backbone's stage taps (no parameter changes)."""
        self.stage_taps = True

    def _gate(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return x if self.gates is None or not self.tap_gates_inline else self.gates[name](x)

    def head_parameters(self):
        """Parameters trained at the head learning rate (everything outside the backbone)."""
        return [p for n, p in self.named_parameters() if not n.startswith("backbone.")]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        size = x.shape[-2:]
        stages = {}
        if self.stage_taps:
            low, backbone_tap, stages = self.backbone(x, stages=True)
        else:
            low, backbone_tap = self.backbone(x)
        encoder_tap = self.aspp(self.backbone.activate(self._gate("backbone", backbone_tap)))
        decoder_tap = self.decoder(self.aspp_out(self._gate("encoder", encoder_tap)), low)
        logits = self.classifier(self._gate("decoder", decoder_tap))
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=self.align_corners)
        return logits, {**stages, "backbone": backbone_tap, "encoder": encoder_tap, "decoder": decoder_tap}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
