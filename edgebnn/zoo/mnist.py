"""BinaryNet-style MLP and CNN for 28×28 digits (MNIST, Fashion-MNIST).

`binarynet_cnn` is also the shared backbone of the methods table: every
method swaps only what sits in the conv / linear slots (see methods.py).

CNN layout (per method, the slots marked * change):
    stem   Conv 3×3 (float, 1->c1) -> BN -> MaxPool 2          28 -> 14
    block  *[quantize -> Conv 3×3 c1->c2] -> BN -> MaxPool 2   14 -> 7
    block  *[quantize -> Conv 3×3 c2->c3] -> BN -> MaxPool 2   7 -> 3
    fc     Flatten -> *[quantize -> Linear 9·c3->hidden] -> BN -> ReLU
    head   Linear hidden->classes (float)

Each binary layer is preceded by BN -> (pool) -> sign: the BN -> sign ->
binary conv order of XNOR-Net, with the max-pool moved before the sign. The
two orders compute the same thing (sign is monotone, so it commutes with
max), but this one lets the runtime fold BN + sign into thresholds and pool
on packed bits. The first and last layers stay float, as in XNOR-Net,
Bi-Real and QuickNet: they hold ~1 % of the weights and most of the
accuracy that binarizing them would cost.
"""
from __future__ import annotations

from torch import nn

from ..nn import BinaryLinear
from .methods import method_spec


def binarynet_cnn(
    method: str = "bnn",
    num_classes: int = 10,
    in_channels: int = 1,
    channels: tuple[int, int, int] = (32, 64, 64),
    hidden: int = 128,
    bits: int | None = None,
    part: int | None = None,
    pad_value: float | None = None,
    stochastic_eval: str | None = None,
) -> nn.Sequential:
    spec = method_spec(method, bits=bits, part=part, pad_value=pad_value, stochastic_eval=stochastic_eval)
    c1, c2, c3 = channels
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 3, padding=1, bias=False),
        nn.BatchNorm2d(c1),
        nn.MaxPool2d(2),
        spec.conv(c1, c2),
        nn.BatchNorm2d(c2),
        nn.MaxPool2d(2),
        spec.conv(c2, c3),
        nn.BatchNorm2d(c3),
        nn.MaxPool2d(2),
        nn.Flatten(),
        spec.linear(c3 * 3 * 3, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def binarynet_mlp(
    method: str = "bnn",
    num_classes: int = 10,
    in_channels: int = 1,
    image_size: int = 28,
    hidden: int = 1024,
    depth: int = 3,
    bits: int | None = None,
    stochastic_eval: str | None = None,
) -> nn.Sequential:
    """BinaryNet's MLP (the paper used 3 × 4096 hidden units; `hidden` scales it).

    Every layer has binary weights; the first sees the real pixels, the
    others sign(BN(previous)), and a BatchNorm is the output, as in the paper.
    """
    spec = method_spec(method, bits=bits, stochastic_eval=stochastic_eval)
    if spec.part > 1:
        raise ValueError("HetConv applies to convolutions; binarynet_mlp has none")
    n_in = in_channels * image_size * image_size
    first = (
        nn.Linear(n_in, hidden, bias=False)
        if spec.is_float
        else BinaryLinear(n_in, hidden, weight_quant=spec.weight_quant, input_quant="none",
                          stochastic_eval=spec.stochastic_eval)
    )
    layers: list[nn.Module] = [nn.Flatten(), first, nn.BatchNorm1d(hidden)]
    for _ in range(depth - 1):
        layers += [spec.linear(hidden, hidden), nn.BatchNorm1d(hidden)]
    layers += [spec.linear(hidden, num_classes), nn.BatchNorm1d(num_classes)]
    return nn.Sequential(*layers)
