"""HetConv VGG-16 and ResNet in CIFAR shape (3×32×32 in, 10 classes).

Every 3×3 conv whose channel counts P divides becomes a HetConv2d of part
P; the first conv (3 input channels) stays standard, as in the paper.
part=1 is the float twin: ordinary convolutions, same graph otherwise.
"""
from __future__ import annotations

from torch import nn

from .methods import MethodSpec, method_spec

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _conv(spec: MethodSpec, in_ch: int, out_ch: int, stride: int = 1) -> nn.Module:
    # These nets are post-activation (conv -> BN -> ReLU): the bare conv slot.
    return spec.conv_layer(in_ch, out_ch, 3, stride)


def hetconv_vgg16(part: int = 4, num_classes: int = 10, in_channels: int = 3) -> nn.Sequential:
    spec = method_spec("hetconv", part=part)
    layers: list[nn.Module] = []
    ch = in_channels
    for v in VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [_conv(spec, ch, v), nn.BatchNorm2d(v), nn.ReLU()]
            ch = v
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, num_classes)]
    return nn.Sequential(*layers)


class HetBasicBlock(nn.Module):
    def __init__(self, spec: MethodSpec, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv(spec, in_ch, out_ch, stride), nn.BatchNorm2d(out_ch), nn.ReLU(),
            _conv(spec, out_ch, out_ch), nn.BatchNorm2d(out_ch),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and in_ch == out_ch
            else nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
        )
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def hetconv_resnet(depth: int = 20, part: int = 4, num_classes: int = 10, in_channels: int = 3,
                   widths: tuple[int, int, int] = (16, 32, 64)) -> nn.Sequential:
    """CIFAR ResNet-(6n+2) (He et al. 2016): three stages of n basic blocks."""
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
    n = (depth - 2) // 6
    spec = method_spec("hetconv", part=part)
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                               nn.BatchNorm2d(widths[0]), nn.ReLU()]
    ch = widths[0]
    for i, out in enumerate(widths):
        for j in range(n):
            layers.append(HetBasicBlock(spec, ch, out, 2 if i > 0 and j == 0 else 1))
            ch = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, num_classes)]
    return nn.Sequential(*layers)
