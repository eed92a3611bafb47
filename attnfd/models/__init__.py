from attnfd.models.backbones import BACKBONES, build_backbone
from attnfd.models.deeplabv3plus import ALL_TAPS, STAGE_TAPS, TAPS, DeepLabV3Plus, count_parameters


def build_model(config) -> DeepLabV3Plus:
    """The DeepLabV3+ a resolved TrainConfig describes."""
    return DeepLabV3Plus(
        config.backbone,
        config.num_classes,
        output_stride=config.output_stride,
        head_channels=config.head_channels,
        aspp_rates=config.aspp_rates,
        backbone_weights=config.backbone_weights,
        tap_gates=config.tap_gates,
        multi_grid=config.multi_grid,
        mobilenet_dilation=config.mobilenet_dilation,
        fixed_padding=config.fixed_padding,
        align_corners=config.align_corners,
        tap_gates_inline=config.tap_gates_inline,
    )


__all__ = ["ALL_TAPS", "BACKBONES", "STAGE_TAPS", "TAPS", "DeepLabV3Plus", "build_backbone", "build_model", "count_parameters"]
