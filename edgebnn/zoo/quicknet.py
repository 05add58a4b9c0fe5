"""A QuickNet-style binary network (Larq zoo, Bannink et al. 2021), ImageNet shape.

    stem        Conv 3×3 s2 -> BN -> ReLU -> depthwise 3×3 s2 -> BN -> Conv 1×1 -> BN   (float)
    sections    binary blocks: x + BN(ReLU(binary_conv(sign(x))))  with one padding
    transitions ReLU -> MaxPool 3 s1 -> depthwise 3×3 s2 -> Conv 1×1 -> BN          (float)
    head        ReLU -> global average pool -> Linear (float)

Binary convs use sign weights and inputs without scales and pad with +1
("one padding", pad_value=1) as Larq's QuickNet does, so every tap is binary.
method="float" gives the float twin (float convs, no quantization).
"""
from __future__ import annotations

from torch import nn

from .methods import MethodSpec, method_spec


class QuickNetBlock(nn.Module):
    def __init__(self, spec: MethodSpec, channels: int):
        super().__init__()
        self.conv = spec.conv(channels, channels, 3)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        return x + self.bn(self.relu(self.conv(x)))


def _transition(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(),
        nn.MaxPool2d(3, 1, 1),
        nn.Conv2d(in_ch, in_ch, 3, 2, 1, groups=in_ch, bias=False),
        nn.Conv2d(in_ch, out_ch, 1, bias=False),
        nn.BatchNorm2d(out_ch),
    )


def quicknet(
    method: str = "bnn",
    num_classes: int = 1000,
    in_channels: int = 3,
    section_filters: tuple[int, ...] = (64, 128, 256, 512),
    section_blocks: tuple[int, ...] = (4, 4, 4, 4),
    **knobs,
) -> nn.Sequential:
    knobs.setdefault("pad_value", 1.0)
    spec = method_spec(method, **knobs)
    first = section_filters[0]
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, first // 4, 3, 2, 1, bias=False),
        nn.BatchNorm2d(first // 4),
        nn.ReLU(),
        nn.Conv2d(first // 4, first // 4, 3, 2, 1, groups=first // 4, bias=False),
        nn.BatchNorm2d(first // 4),
        nn.Conv2d(first // 4, first, 1, bias=False),
        nn.BatchNorm2d(first),
    ]
    for i, (filters, blocks) in enumerate(zip(section_filters, section_blocks)):
        if i > 0:
            layers.append(_transition(section_filters[i - 1], filters))
        layers += [QuickNetBlock(spec, filters) for _ in range(blocks)]
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(section_filters[-1], num_classes)]
    return nn.Sequential(*layers)
