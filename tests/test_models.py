import pytest
import torch
from torchvision import models as tvm

from attnfd.models import BACKBONES, DeepLabV3Plus, count_parameters


@pytest.mark.parametrize("backbone,paper_millions", [("resnet101", 59.3), ("resnet18", 16.6), ("mobilenet_v2", 5.9)])
def test_parameter_count_matches_paper(backbone, paper_millions):
    millions = count_parameters(DeepLabV3Plus(backbone, 21)) / 1e6
    assert abs(millions - paper_millions) / paper_millions < 0.02, millions


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("output_stride", [8, 16])
def test_tap_shapes(backbone, output_stride):
    model = DeepLabV3Plus(backbone, 5, output_stride=output_stride, head_channels=16).eval()
    with torch.no_grad():
        logits, taps = model(torch.randn(1, 3, 64, 48))
    assert logits.shape == (1, 5, 64, 48)
    side = (64 // output_stride, 48 // output_stride)
    deep = {"resnet18": 512, "resnet34": 512, "mobilenet_v2": 320}.get(backbone, 2048)
    assert taps["backbone"].shape == (1, deep, *side)
    assert taps["encoder"].shape == (1, 16, *side)
    assert taps["decoder"].shape == (1, 16, 16, 12)  # stride 4, the low-level map's size
    assert model.tap_channels == {"backbone": deep, "encoder": 16, "decoder": 16}


def test_taps_are_pre_relu_and_come_from_the_single_forward():
    model = DeepLabV3Plus("resnet18", 3, head_channels=16).eval()
    # as after training: from scratch the last block's residual branch starts at zero, and
    # its pre-ReLU output is then the (non-negative) shortcut alone
    torch.nn.init.ones_(model.backbone.layer4_last.bn2.weight)
    calls = []
    model.backbone.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        _, taps = model(torch.randn(2, 3, 64, 64))
    assert len(calls) == 1
    for name, tap in taps.items():
        assert (tap < 0).any(), f"{name} tap has no negative values: it was taken after a ReLU"


def test_backbone_weights_load_from_a_local_file(tmp_path):
    reference = tvm.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = DeepLabV3Plus("resnet18", 21, backbone_weights=str(path))
    assert torch.equal(model.backbone.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    assert torch.equal(model.backbone.layer4_last.conv2.weight, reference.layer4[-1].conv2.weight)
    # loaded weights are kept as given: no zero init of the residual branches over them
    assert torch.equal(model.backbone.layer4_last.bn2.weight, reference.layer4[-1].bn2.weight)


@pytest.mark.parametrize("backbone,last_bn", [("resnet18", "bn2"), ("resnet101", "bn3")])
def test_random_resnet_blocks_start_as_the_identity(backbone, last_bn):
    model = DeepLabV3Plus(backbone, 3, head_channels=16)
    blocks = [b for name in ("layer1", "layer2", "layer3") for b in getattr(model.backbone, name)]
    blocks += [*model.backbone.layer4_body, model.backbone.layer4_last]
    assert all(not getattr(b, last_bn).weight.any() for b in blocks)


def test_missing_backbone_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="backbone weights not found"):
        DeepLabV3Plus("resnet18", 21, backbone_weights=str(tmp_path / "nope.pth"))


def test_tap_gates_sit_in_the_forward_path():
    torch.manual_seed(0)
    gated = DeepLabV3Plus("resnet18", 3, head_channels=16, tap_gates=True).eval()
    plain = DeepLabV3Plus("resnet18", 3, head_channels=16).eval()
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if not k.startswith("gates.")})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        (gl, gt), (pl, pt) = gated(x), plain(x)
    assert torch.equal(gt["backbone"], pt["backbone"])  # the first tap is read before its gate
    assert not torch.allclose(gl, pl)
