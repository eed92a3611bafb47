"""Checkpoints in other codebases' key layouts, mapped into an attnfd ``model.pt``.

``official``: the DeepLabV3+ of jfzhang95/pytorch-deeplab-xception as the AttnFD code
(AmirMansurian/AttnFD) extends it: ``backbone.`` (ResNet ``conv1``/``bn1``/``layer1-4``, or
MobileNetV2 ``features.N.conv.M``), ``aspp.`` (``aspp1-4``, ``global_avg_pool``, ``conv1``,
``bn1``), ``decoder.`` (``conv1``, ``bn1``, ``last_conv.0-8``) and a CBAM per tap
(``backbone.cbam``, ``aspp.cbam``, ``decoder.cbam``). clovaai/overhaul-distillation's
``Segmentation/`` (and ICKD's copy of it) uses the same layout without the CBAMs, so its
checkpoints convert too. The checkpoint may be the ``{"state_dict": ...}`` file those
repositories save, with or without DataParallel's ``module.`` prefix.

The model written has the official architecture options (multi-grid layer4, the official
MobileNetV2 dilation and padding, ``align_corners``), so its logits and taps equal the
official forward. The official CBAMs become the model's tap gates, held beside the forward
path (``tap_gates_inline=False``, as ``forward()`` there never calls them): their ``nn.Linear``
MLP becomes 1x1 convs, the spatial gate's input order [max, mean] is swapped to [mean, max],
and its BatchNorm is folded into the 7x7 conv (exact in eval mode, where a frozen teacher's
gates run).

Not converted: torchvision's segmentation models are DeepLabV3 without the V3+ decoder, so
only their backbone maps (use ``backbone_weights`` with an ImageNet state dict instead).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from attnfd import checkpoint as ckpt

LAYOUTS = ("official",)
# official tap owner -> attnfd tap
CBAM_TAPS = {"backbone": "backbone", "aspp": "encoder", "decoder": "decoder"}
ASPP_KEYS = {
    "aspp1.atrous_conv": "branches.0.0", "aspp1.bn": "branches.0.1",
    "aspp2.atrous_conv": "branches.1.0", "aspp2.bn": "branches.1.1",
    "aspp3.atrous_conv": "branches.2.0", "aspp3.bn": "branches.2.1",
    "aspp4.atrous_conv": "branches.3.0", "aspp4.bn": "branches.3.1",
    "global_avg_pool.1": "image_pool.1", "global_avg_pool.2": "image_pool.2",
    "conv1": "project.0", "bn1": "project.1",
}
DECODER_KEYS = {
    "conv1": "decoder.low_project.0", "bn1": "decoder.low_project.1",
    "last_conv.0": "decoder.fuse.0", "last_conv.1": "decoder.fuse.1",
    "last_conv.4": "decoder.fuse.4", "last_conv.5": "decoder.fuse.5",
    "last_conv.8": "classifier.2",
}
# official MobileNetV2 conv index -> torchvision's, for blocks with and without expansion
MOBILENET_EXPAND = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
MOBILENET_NO_EXPAND = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}
RESNETS_BY_BLOCKS = {(2, False): "resnet18", (6, False): "resnet34", (6, True): "resnet50", (23, True): "resnet101"}


class ConversionError(ValueError):
    pass


def _unwrap(state: dict) -> dict[str, torch.Tensor]:
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items()}


def detect_backbone(state: dict[str, torch.Tensor]) -> str:
    if "backbone.features.0.0.weight" in state:
        return "mobilenet_v2"
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"backbone\.layer3\.(\d+)\.", k))}
    bottleneck = "backbone.layer1.0.conv3.weight" in state
    name = RESNETS_BY_BLOCKS.get((len(blocks), bottleneck))
    if name is None:
        raise ConversionError(f"not an official DeepLab backbone: layer3 has {len(blocks)} blocks")
    return name


def _backbone_key(rest: str, backbone: str, layer4_blocks: int) -> str:
    if backbone == "mobilenet_v2":
        m = re.fullmatch(r"features\.(\d+)\.(.+)", rest)
        if m is None:
            raise ConversionError(f"unknown MobileNetV2 key backbone.{rest}")
        index, tail = int(m.group(1)), m.group(2)
        if index > 0:
            conv = re.fullmatch(r"conv\.(\d+)\.(.+)", tail)
            table = MOBILENET_NO_EXPAND if index == 1 else MOBILENET_EXPAND
            if conv is None or conv.group(1) not in table:
                raise ConversionError(f"unknown MobileNetV2 key backbone.{rest}")
            tail = f"conv.{table[conv.group(1)]}.{conv.group(2)}"
        return f"backbone.{'low' if index < 4 else 'high'}.{index}.{tail}"
    for official, ours in (("conv1.", "stem.0."), ("bn1.", "stem.1.")):
        if rest.startswith(official):
            return "backbone." + ours + rest[len(official):]
    m = re.fullmatch(r"layer4\.(\d+)\.(.+)", rest)
    if m:
        index = int(m.group(1))
        owner = f"layer4_body.{index}" if index < layer4_blocks - 1 else "layer4_last"
        return f"backbone.{owner}.{m.group(2)}"
    if re.match(r"layer[123]\.", rest):
        return "backbone." + rest
    raise ConversionError(f"unknown ResNet key backbone.{rest}")


def _mapped(prefix: str, rest: str, table: dict[str, str]) -> str:
    for official, ours in table.items():
        if rest.startswith(official + "."):
            return prefix + ours + rest[len(official):]
    raise ConversionError(f"unknown key {rest}")


def _cbam(state: dict[str, torch.Tensor], owner: str) -> dict[str, torch.Tensor]:
    """One official CBAM as an attnfd CBAM's state (MLP as 1x1 convs, spatial BN folded)."""
    p = f"{owner}.cbam."
    w1, w2 = state[p + "ChannelGate.mlp.1.weight"], state[p + "ChannelGate.mlp.3.weight"]
    conv = state[p + "SpatialGate.spatial.conv.weight"].double()
    gamma, beta = state[p + "SpatialGate.spatial.bn.weight"].double(), state[p + "SpatialGate.spatial.bn.bias"].double()
    mean, var = state[p + "SpatialGate.spatial.bn.running_mean"].double(), state[p + "SpatialGate.spatial.bn.running_var"].double()
    # the official CBAM's BatchNorm keeps nn.BatchNorm2d's default eps
    scale = gamma / torch.sqrt(var + 1e-5)
    return {
        "channel_gate.mlp.0.weight": w1[:, :, None, None].clone(),
        "channel_gate.mlp.0.bias": state[p + "ChannelGate.mlp.1.bias"].clone(),
        "channel_gate.mlp.2.weight": w2[:, :, None, None].clone(),
        "channel_gate.mlp.2.bias": state[p + "ChannelGate.mlp.3.bias"].clone(),
        # official channel pool is [max, mean]; attnfd's is [mean, max]
        "spatial_gate.conv.weight": (conv * scale.view(-1, 1, 1, 1))[:, [1, 0]].float(),
        "spatial_gate.conv.bias": (beta - mean * scale).float(),
    }


def convert_official(state: dict, dataset: str | None = None, output_stride: int = 16, role: str = "teacher"):
    """(config dict, model state dict) of the attnfd model equal to an official checkpoint."""
    from attnfd.config import TrainConfig
    from attnfd.models import build_model

    state = _unwrap(state)
    backbone = detect_backbone(state)
    classifier = state.get("decoder.last_conv.8.weight")
    if classifier is None:
        raise ConversionError("no decoder.last_conv.8.weight: not an official DeepLabV3+ checkpoint")
    num_classes = classifier.shape[0]
    if dataset is None:
        from attnfd.data.registry import DATASETS

        # official checkpoints are trained on real data: the data sets read from disk
        matches = [n for n, spec in DATASETS.items() if spec.reads_files and spec.num_classes == num_classes]
        if len(matches) != 1:
            raise ConversionError(f"{num_classes} classes: name the data set (dataset=...)")
        dataset, = matches
    gated = all(f"{owner}.cbam.ChannelGate.mlp.1.weight" in state for owner in CBAM_TAPS)
    config = TrainConfig.from_dict({
        "role": role, "dataset": dataset, "backbone": backbone, "teacher_backbone": backbone,
        "output_stride": output_stride, "head_channels": state["decoder.last_conv.4.weight"].shape[0],
        "aspp_rates": (6, 12, 18), "recipe": "official", "tap_gates": gated,
    })
    if config.num_classes != num_classes:
        raise ConversionError(f"the checkpoint has {num_classes} classes, {dataset} has {config.num_classes}")
    layer4_blocks = len({m.group(1) for k in state if (m := re.match(r"backbone\.layer4\.(\d+)\.", k))})
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".cbam." in key:
            continue
        owner, _, rest = key.partition(".")
        if owner == "backbone":
            ours = _backbone_key(rest, backbone, layer4_blocks)
        elif owner == "aspp":
            ours = _mapped("aspp.", rest, ASPP_KEYS)
        elif owner == "decoder":
            ours = _mapped("", rest, DECODER_KEYS)
        else:
            raise ConversionError(f"unknown key {key}")
        converted[ours] = value
    if gated:
        for owner, tap in CBAM_TAPS.items():
            converted.update({f"gates.{tap}.{k}": v for k, v in _cbam(state, owner).items()})
    model = build_model(config)
    expected = model.state_dict()
    for key, value in expected.items():
        # SynchronizedBatchNorm2d and older PyTorch save no batch counter
        if key.endswith("num_batches_tracked") and key not in converted:
            converted[key] = torch.zeros_like(value)
    missing = sorted(set(expected) - set(converted))
    if missing:
        raise ConversionError(f"{len(missing)} weight(s) missing from the checkpoint, e.g. {missing[0]}")
    for key, value in converted.items():
        if key not in expected or expected[key].shape != value.shape:
            raise ConversionError(f"{key}: shape {tuple(value.shape)} does not fit {backbone}")
    model.load_state_dict(converted, strict=True)
    return config.to_dict(), model.state_dict()


def convert_file(layout: str, source: str | Path, out: str | Path, dataset: str | None = None,
                 output_stride: int = 16, role: str = "teacher") -> Path:
    """Read a checkpoint in ``layout``, write an attnfd ``model.pt`` (usable as
    ``teacher_checkpoint`` and by ``attnfd evaluate``)."""
    if layout not in LAYOUTS:
        raise ConversionError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise FileNotFoundError(f"checkpoint not found: {source}")
    # a foreign file may hold argparse namespaces and numpy values beside the weights
    state = torch.load(source, map_location="cpu", weights_only=False)
    config, model_state = convert_official(state, dataset=dataset, output_stride=output_stride, role=role)
    if out.is_dir() or out.suffix != ".pt":
        out = out / ckpt.MODEL_FILE
    ckpt.atomic_save({"config": config, "model": model_state, "history": [], "converted_from": str(source)}, out)
    return out
