"""CBAM (Woo et al., 2018) as AttnFD uses it to refine feature maps (paper eqs. 1-4).

``CBAM`` is the learnable module: a channel gate (avg- and max-pooled descriptors through a
shared MLP with reduction 16, summed, sigmoid) followed by a spatial gate (channel-wise avg
and max maps, 7x7 conv, sigmoid). The paper's eq. 4 has no normalisation in the spatial
gate, so there is none here. The official code (AmirMansurian/AttnFD ``cbam.py``) stacks the
pooled maps as [max, mean], uses ``nn.Linear`` layers for the MLP, and follows its bias-free
7x7 conv with a BatchNorm; ``attnfd.models.convert`` maps its weights here (BN folded into
the conv, exact in eval mode).

``ParameterFreeCBAM`` is the official code's "teacher" mode: no MLP (the pooled
descriptors are summed directly) and a spatial gate from the sum of the channel-wise max and
mean maps.
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelGate(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3), keepdim=True)
        mx = x.amax(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.mlp(avg) + self.mlp(mx))


class SpatialGate(nn.Module):
    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.channel_gate = ChannelGate(channels, reduction)
        self.spatial_gate = SpatialGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel_gate(x) * x
        return self.spatial_gate(x) * x


class ParameterFreeCBAM(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = torch.sigmoid(x.mean(dim=(2, 3), keepdim=True) + x.amax(dim=(2, 3), keepdim=True))
        x = channel * x
        spatial = torch.sigmoid(x.mean(dim=1, keepdim=True) + x.amax(dim=1, keepdim=True))
        return spatial * x
