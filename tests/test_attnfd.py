import copy

import pytest
import torch

from attnfd.config import ConfigError, TrainConfig
from attnfd.distill.attnfd import AttnFD, attention_distance, normalise
from attnfd.models import DeepLabV3Plus


@pytest.mark.parametrize("norm", ["channel", "tensor"])
def test_distance_is_zero_for_identical_maps_and_positive_otherwise(norm):
    x = torch.randn(2, 8, 5, 5)
    assert attention_distance(x, normalise(x, norm), norm).item() == pytest.approx(0.0, abs=1e-10)
    assert attention_distance(x, normalise(torch.randn_like(x), norm), norm).item() > 0.1


def test_channel_norm_ignores_per_pixel_scale_and_tensor_norm_ignores_global_scale():
    x = torch.randn(2, 8, 5, 5)
    per_pixel = torch.rand(2, 1, 5, 5) + 0.5
    assert attention_distance(x * per_pixel, normalise(x, "channel"), "channel").item() < 1e-10
    assert attention_distance(x * 7.0, normalise(x, "tensor"), "tensor").item() < 1e-10


def _pair(teacher_gate="parameter_free", layers=("backbone", "encoder", "decoder"), **kw):
    torch.manual_seed(0)
    student = DeepLabV3Plus("mobilenet_v2", 3, head_channels=16)
    teacher = DeepLabV3Plus("resnet18", 3, head_channels=32, tap_gates=teacher_gate == "learned").eval()
    teacher.requires_grad_(False)
    config = TrainConfig.from_dict({"layers": layers, "teacher_gate": teacher_gate, **kw})
    return student, teacher, AttnFD(student, teacher, config)


def _loss(student, teacher, distiller, x):
    with torch.inference_mode():
        t_logits, t_taps = teacher(x)
        targets = distiller.teacher_targets(t_logits, t_taps)
    targets = {k: v.clone() for k, v in targets.items()}
    logits, taps = student(x)
    return distiller(logits, taps, targets, None)


@pytest.mark.parametrize("gate", ["learned", "parameter_free", "untrained"])
def test_gradients_reach_student_and_connectors_only(gate):
    student, teacher, distiller = _pair(gate)
    parts = _loss(student, teacher, distiller, torch.randn(2, 3, 64, 64))
    assert set(parts) == {"attnfd.backbone", "attnfd.encoder", "attnfd.decoder"}
    total = sum(parts.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    assert all(p.grad is not None for p in student.backbone.parameters() if p.requires_grad)
    assert all(p.grad is not None for p in distiller.connectors.parameters())
    assert all(p.grad is not None for p in distiller.student_gates.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    trainable = [p for p in distiller.parameters() if p.requires_grad]
    own = list(distiller.connectors.parameters()) + list(distiller.student_gates.parameters())
    assert {id(p) for p in trainable} == {id(p) for p in own}  # no teacher-side gate is trainable


def test_parameter_free_teacher_gate_has_no_parameters():
    _, _, distiller = _pair("parameter_free")
    assert not hasattr(distiller, "untrained_teacher_gates")
    assert sum(p.numel() for g in distiller._teacher_gates.values() for p in g.parameters()) == 0


def test_loss_is_zero_when_the_student_is_the_teacher():
    torch.manual_seed(0)
    teacher = DeepLabV3Plus("resnet18", 3, head_channels=16, tap_gates=True).eval().requires_grad_(False)
    student = copy.deepcopy(teacher).requires_grad_(True).eval()
    config = TrainConfig.from_dict({"teacher_gate": "learned", "tap_relu": "post"})
    distiller = AttnFD(student, teacher, config).eval()
    for name in config.layers:
        distiller.student_gates[name].load_state_dict(teacher.gates[name].state_dict())
        conv, bn = distiller.connectors[name]
        with torch.no_grad():
            conv.weight.copy_(torch.eye(conv.in_channels)[..., None, None])
        bn.running_mean.zero_(), bn.running_var.fill_(1.0 - bn.eps)
    parts = _loss(student, teacher, distiller, torch.randn(2, 3, 64, 64))
    for name, value in parts.items():
        assert value.item() == pytest.approx(0.0, abs=1e-8), name


def test_layer_subset_and_spatial_matching():
    # an OS16 student against an OS8 teacher: backbone/encoder maps differ in size
    torch.manual_seed(0)
    student = DeepLabV3Plus("resnet18", 3, head_channels=16, output_stride=16)
    teacher = DeepLabV3Plus("resnet18", 3, head_channels=16, output_stride=8).eval().requires_grad_(False)
    config = TrainConfig.from_dict({"layers": "encoder", "teacher_gate": "untrained"})
    parts = _loss(student, teacher, AttnFD(student, teacher, config), torch.randn(2, 3, 64, 64))
    assert list(parts) == ["attnfd.encoder"] and parts["attnfd.encoder"] > 0


def test_learned_gate_needs_a_gated_teacher():
    with pytest.raises(ConfigError, match="tap_gates"):
        student = DeepLabV3Plus("resnet18", 3, head_channels=16)
        AttnFD(student, DeepLabV3Plus("resnet18", 3, head_channels=16), TrainConfig.from_dict({}))
