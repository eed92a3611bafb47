from attnfd.models.backbones import BACKBONES, build_backbone
from attnfd.models.deeplabv3plus import TAPS, DeepLabV3Plus, count_parameters


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
    )


__all__ = ["BACKBONES", "TAPS", "DeepLabV3Plus", "build_backbone", "build_model", "count_parameters"]
