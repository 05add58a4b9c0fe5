"""MobileNetV1 and MobileNetV2 (ImageNet shape) with width multipliers.

Float networks (they are their own float twin); the runtime runs them on its
float / int8 kernels. Channel counts are scaled by `width` and rounded to a
multiple of 8, as the reference implementations do.
"""
from __future__ import annotations

from torch import nn

from ..nn import DepthwiseSeparable, InvertedResidual
from ..nn.blocks import conv_bn_act

# (out_channels, stride) of each depthwise-separable block.
V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
             (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
# (expand ratio t, out_channels c, repeats n, first stride s).
V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to a multiple of `divisor`, never below 90 % of `value` (TF reference rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def mobilenet_v1(width: float = 1.0, num_classes: int = 1000, in_channels: int = 3) -> nn.Sequential:
    ch = make_divisible(32 * width)
    layers: list[nn.Module] = [conv_bn_act(in_channels, ch, 3, 2)]
    for out, stride in V1_BLOCKS:
        out = make_divisible(out * width)
        layers.append(DepthwiseSeparable(ch, out, stride))
        ch = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, num_classes)]
    return nn.Sequential(*layers)


def mobilenet_v2(width: float = 1.0, num_classes: int = 1000, in_channels: int = 3) -> nn.Sequential:
    ch = make_divisible(32 * width)
    last = make_divisible(1280 * max(1.0, width))
    layers: list[nn.Module] = [conv_bn_act(in_channels, ch, 3, 2, act=nn.ReLU6)]
    for t, c, n, s in V2_BLOCKS:
        out = make_divisible(c * width)
        for i in range(n):
            layers.append(InvertedResidual(ch, out, s if i == 0 else 1, t))
            ch = out
    layers += [conv_bn_act(ch, last, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(last, num_classes)]
    return nn.Sequential(*layers)
