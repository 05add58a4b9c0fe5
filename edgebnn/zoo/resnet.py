"""Binary ResNet-18s in ImageNet shape (3×224×224 in, 1000 classes).

xnor_resnet18: XNOR-Net's ResNet-18: basic blocks of two binary 3×3 convs,
               each preceded by BN -> sign (β·sign(X), α·sign(W)), one real
               shortcut per block.
birealnet18:   Bi-Real Net 18: a real shortcut around *every* binary conv
               (x + BN(conv(sign(x)))), ApproxSign backward, downsampling
               shortcut AvgPool 2 -> Conv 1×1 -> BN in float.
Stem (7×7 conv, max-pool) and classifier stay float. method="float" gives
each one's float twin: the same graph with ReLU + float convs.
"""
from __future__ import annotations

from torch import nn

from .methods import MethodSpec, method_spec

STAGES = (64, 128, 256, 512)


def _stem(in_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    )


def _head(channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(channels, num_classes))


class XnorBasicBlock(nn.Module):
    """BN -> sign -> binary conv, twice, around one shortcut."""

    def __init__(self, spec: MethodSpec, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = spec.conv(in_ch, out_ch, 3, stride)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = spec.conv(out_ch, out_ch, 3, 1)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and in_ch == out_ch
            else nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
        )

    def forward(self, x):
        y = self.conv2(self.bn2(self.conv1(self.bn1(x))))
        return y + self.shortcut(x)


class BiRealUnit(nn.Module):
    """x + BN(binary_conv(sign(x))): a real shortcut around one binary conv."""

    def __init__(self, spec: MethodSpec, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv = spec.conv(in_ch, out_ch, 3, stride)
        self.bn = nn.BatchNorm2d(out_ch)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and in_ch == out_ch
            else nn.Sequential(nn.AvgPool2d(2, stride), nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        )

    def forward(self, x):
        return self.bn(self.conv(x)) + self.shortcut(x)


def _stages(unit, spec: MethodSpec, units_per_stage: int) -> nn.Sequential:
    layers, in_ch = [], 64
    for i, out_ch in enumerate(STAGES):
        for j in range(units_per_stage):
            stride = 2 if i > 0 and j == 0 else 1
            layers.append(unit(spec, in_ch, out_ch, stride))
            in_ch = out_ch
    return nn.Sequential(*layers)


def xnor_resnet18(method: str = "xnor", num_classes: int = 1000, in_channels: int = 3, **knobs) -> nn.Sequential:
    spec = method_spec(method, **knobs)
    return nn.Sequential(_stem(in_channels), _stages(XnorBasicBlock, spec, 2), _head(STAGES[-1], num_classes))


def birealnet18(method: str = "bireal", num_classes: int = 1000, in_channels: int = 3, **knobs) -> nn.Sequential:
    spec = method_spec(method, **knobs)
    # 2 basic blocks per stage = 4 binary convs, each its own Bi-Real unit.
    return nn.Sequential(_stem(in_channels), _stages(BiRealUnit, spec, 4), _head(STAGES[-1], num_classes))
