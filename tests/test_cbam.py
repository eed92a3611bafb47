import torch

from attnfd.cbam import CBAM, ParameterFreeCBAM


def test_cbam_keeps_shape_and_only_rescales():
    x = torch.randn(2, 32, 6, 5)
    for gate in (CBAM(32), ParameterFreeCBAM()):
        y = gate(x)
        assert y.shape == x.shape
        ratio = y / x
        assert ((ratio > 0) & (ratio < 1)).all()  # two sigmoid gates multiply each value


def test_cbam_reduction_16_and_7x7_spatial_conv():
    gate = CBAM(64)
    assert gate.channel_gate.mlp[0].out_channels == 4
    assert gate.spatial_gate.conv.kernel_size == (7, 7)
    assert sum(p.numel() for p in ParameterFreeCBAM().parameters()) == 0
