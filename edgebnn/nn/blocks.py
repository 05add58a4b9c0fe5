"""Compact-network blocks: depthwise-separable (MobileNetV1), inverted residual
(MobileNetV2) and channel shuffle (ShuffleNet)."""
from __future__ import annotations

import torch
from torch import nn


def conv_bn_act(in_ch, out_ch, kernel_size=3, stride=1, groups=1, act: type[nn.Module] | None = nn.ReLU):
    layers = [
        nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class DepthwiseSeparable(nn.Sequential):
    """Depthwise K×K (one filter per channel) then pointwise 1×1, each BN + ReLU.

    Cost vs a standard conv ≈ 1/out + 1/K².
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, kernel_size: int = 3, act=nn.ReLU):
        super().__init__(
            conv_bn_act(in_ch, in_ch, kernel_size, stride, groups=in_ch, act=act),
            conv_bn_act(in_ch, out_ch, 1, act=act),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2: 1×1 expand (t×), ReLU6, 3×3 depthwise, ReLU6, 1×1 linear projection,
    residual add when the shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, expand_ratio: int = 6):
        super().__init__()
        hidden = in_ch * expand_ratio
        layers = [] if expand_ratio == 1 else [conv_bn_act(in_ch, hidden, 1, act=nn.ReLU6)]
        layers += [
            conv_bn_act(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            conv_bn_act(hidden, out_ch, 1, act=None),  # linear bottleneck: no ReLU
        ]
        self.body = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x):
        y = self.body(x)
        return x + y if self.use_residual else y


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(N, g·c, H, W) -> reshape (N, g, c, H, W) -> transpose -> (N, c·g, H, W)."""
    n, ch, h, w = x.shape
    if ch % groups:
        raise ValueError(f"channel_shuffle: {ch} channels not divisible by {groups} groups")
    return x.reshape(n, groups, ch // groups, h, w).transpose(1, 2).reshape(n, ch, h, w)


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return channel_shuffle(x, self.groups)

    def extra_repr(self):
        return f"groups={self.groups}"
