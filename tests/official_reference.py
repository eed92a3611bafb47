"""A reference DeepLabV3+ in the official AttnFD code's structure and key layout, written for
the tests from what that code does (AmirMansurian/AttnFD ``modeling/``, ``cbam.py``; on
jfzhang95/pytorch-deeplab-xception): residual blocks that start with a ReLU and end without
one, a multi-grid layer4 for Bottleneck ResNets, MobileNetV2 with explicit padding before each
block, ``align_corners=True``, and a CBAM (with a BatchNorm in its spatial gate) beside each tap.

``extract`` returns what its ``extract_feature`` gives: the backbone stage maps (pre-ReLU),
ASPP and decoder post-ReLU, the CBAM outputs and the logits. Only its ``state_dict`` key
names and shapes matter to the converter; the forward is the reference the tests compare to.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bn_randomised(module: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial BatchNorm statistics and affine parameters everywhere (a trained model's)."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 0.5 + torch.rand(c, generator=generator)
            m.bias.data = 0.2 * torch.randn(c, generator=generator)
            m.running_mean.data = 0.1 * torch.randn(c, generator=generator)
            m.running_var.data = 0.5 + torch.rand(c, generator=generator)


class ChannelGate(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(c, c // 16), nn.ReLU(), nn.Linear(c // 16, c))

    def forward(self, x):
        avg = self.mlp(F.adaptive_avg_pool2d(x, 1))
        mx = self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(avg + mx)[:, :, None, None]


class SpatialConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(1, momentum=0.01)


class SpatialGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.spatial = SpatialConv()

    def forward(self, x):
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.spatial.bn(self.spatial.conv(pooled)))


class Cbam(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.ChannelGate = ChannelGate(c)
        self.SpatialGate = SpatialGate()

    def forward(self, x):
        return self.SpatialGate(self.ChannelGate(x))


def conv3(cin, cout, stride=1, dilation=1):
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)


class Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, dilation, downsample):
        super().__init__()
        self.conv1, self.bn1 = conv3(cin, planes, stride, dilation), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3(planes, planes, 1, dilation), nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        x = F.relu(x)
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return out + (x if self.downsample is None else self.downsample(x))


class Bottle(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, dilation, downsample):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3(planes, planes, stride, dilation), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        x = F.relu(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + (x if self.downsample is None else self.downsample(x))


class ResNet(nn.Module):
    def __init__(self, block, counts):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.cin = 64
        self.layer1 = self._layer(block, 64, [1] * counts[0], 1, 1)
        self.layer2 = self._layer(block, 128, [1] * counts[1], 2, 1)
        self.layer3 = self._layer(block, 256, [1] * counts[2], 2, 1)
        # output stride 16: layer4 keeps its resolution, dilation 2 (x 1, 2, 4 for Bottleneck)
        grid = [1, 2, 4] if block is Bottle else [1] * counts[3]
        self.layer4 = self._layer(block, 512, grid, 1, 2)
        self.cbam = Cbam(512 * block.expansion)

    def _layer(self, block, planes, grid, stride, dilation):
        downsample = None
        if stride != 1 or self.cin != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.cin, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        blocks = []
        for i, g in enumerate(grid):
            blocks.append(block(self.cin, planes, stride if i == 0 else 1, g * dilation, downsample if i == 0 else None))
            self.cin = planes * block.expansion
        return nn.Sequential(*blocks)

    def extract(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f1, f2, f3, f4], self.cbam(f4), F.relu(f4), F.relu(f1)


class InvRes(nn.Module):
    def __init__(self, cin, cout, stride, dilation, t):
        super().__init__()
        hidden = cin * t
        self.dilation = dilation
        self.residual = stride == 1 and cin == cout
        dw = [nn.Conv2d(hidden, hidden, 3, stride, 0, dilation, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
              nn.ReLU6()]
        pw = [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        expand = [] if t == 1 else [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        self.conv = nn.Sequential(*expand, *dw, *pw)

    def forward(self, x):
        out = self.conv(F.pad(x, [self.dilation] * 4))
        return x + out if self.residual else out


class MobileNet(nn.Module):
    def __init__(self):
        super().__init__()
        layers = [nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())]
        cin, current, rate = 32, 2, 1
        for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                           (6, 160, 3, 2), (6, 320, 1, 1)]:
            if current == 16:
                stride, dilation = 1, rate
                rate *= s
            else:
                stride, dilation = s, 1
                current *= s
            for i in range(n):
                layers.append(InvRes(cin, c, stride if i == 0 else 1, dilation, t))
                cin = c
        self.features = nn.Sequential(*layers)
        self.cbam = Cbam(320)

    def extract(self, x):
        f1 = self.features[0:4](x)
        f2 = self.features[4:7](f1)
        f3 = self.features[7:14](f2)
        f4 = self.features[14:](f3)
        stages = [self.features[4].conv[0:2](f1), self.features[7].conv[0:2](f2), self.features[14].conv[0:2](f3)]
        return [*stages, f4], self.cbam(f4), f4, f1


class AsppBranch(nn.Module):
    def __init__(self, cin, kernel, dilation):
        super().__init__()
        self.atrous_conv = nn.Conv2d(cin, 256, kernel, padding=0 if kernel == 1 else dilation, dilation=dilation,
                                     bias=False)
        self.bn = nn.BatchNorm2d(256)

    def forward(self, x):
        return F.relu(self.bn(self.atrous_conv(x)))


class Aspp(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.aspp1, self.aspp2 = AsppBranch(cin, 1, 1), AsppBranch(cin, 3, 6)
        self.aspp3, self.aspp4 = AsppBranch(cin, 3, 12), AsppBranch(cin, 3, 18)
        self.global_avg_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, 256, 1, bias=False),
                                             nn.BatchNorm2d(256), nn.ReLU())
        self.conv1, self.bn1 = nn.Conv2d(1280, 256, 1, bias=False), nn.BatchNorm2d(256)
        self.cbam = Cbam(256)

    def extract(self, x):
        branches = [self.aspp1(x), self.aspp2(x), self.aspp3(x), self.aspp4(x)]
        pooled = F.interpolate(self.global_avg_pool(x), size=x.shape[-2:], mode="bilinear", align_corners=True)
        feat = F.relu(self.bn1(self.conv1(torch.cat([*branches, pooled], 1))))
        return feat, self.cbam(feat)


class Decoder(nn.Module):
    def __init__(self, low, classes):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(low, 48, 1, bias=False), nn.BatchNorm2d(48)
        self.last_conv = nn.Sequential(
            nn.Conv2d(304, 256, 3, padding=1, bias=False), nn.BatchNorm2d(256), nn.ReLU(), nn.Dropout(0.5),
            nn.Conv2d(256, 256, 3, padding=1, bias=False), nn.BatchNorm2d(256), nn.ReLU(), nn.Dropout(0.1),
            nn.Conv2d(256, classes, 1))
        self.cbam = Cbam(256)

    def extract(self, x, low):
        low = F.relu(self.bn1(self.conv1(low)))
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=True)
        feat = self.last_conv[0:7](torch.cat([x, low], 1))
        return feat, self.cbam(feat), self.last_conv[7:](feat)


class OfficialDeepLab(nn.Module):
    def __init__(self, backbone: str, classes: int = 21, seed: int = 0):
        super().__init__()
        if backbone == "mobilenet_v2":
            self.backbone, deep, low = MobileNet(), 320, 24
        elif backbone == "resnet18":
            self.backbone, deep, low = ResNet(Basic, [2, 2, 2, 2]), 512, 64
        else:
            self.backbone, deep, low = ResNet(Bottle, [3, 4, 23, 3]), 2048, 256
        self.aspp = Aspp(deep)
        self.decoder = Decoder(low, classes)
        bn_randomised(self, torch.Generator().manual_seed(seed))

    def extract(self, image):
        feats, backbone_att, x, low = self.backbone.extract(image)
        aspp_feat, aspp_att = self.aspp.extract(x)
        dec_feat, dec_att, logits = self.decoder.extract(aspp_feat, low)
        logits = F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=True)
        return {"stages": feats[:3], "backbone": feats[3], "encoder": aspp_feat, "decoder": dec_feat,
                "attention": {"backbone": backbone_att, "encoder": aspp_att, "decoder": dec_att}, "logits": logits}
