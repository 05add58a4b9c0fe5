"""The zoo's table: name -> builder, native input shape, float twin."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from .hetconv_cifar import hetconv_resnet, hetconv_vgg16
from .mnist import binarynet_cnn, binarynet_mlp
from .mobilenet import mobilenet_v1, mobilenet_v2
from .quicknet import quicknet
from .resnet import birealnet18, xnor_resnet18


@dataclass(frozen=True)
class ZooEntry:
    name: str
    builder: Callable[..., nn.Module]
    input_shape: tuple[int, int, int]  # (C, H, W) the architecture was designed for
    description: str
    float_twin: dict = field(default_factory=dict)  # kwargs that turn it into its float twin


_ENTRIES = (
    ZooEntry("binarynet_mlp", binarynet_mlp, (1, 28, 28), "BinaryNet MLP for digits", {"method": "float"}),
    ZooEntry("binarynet_cnn", binarynet_cnn, (1, 28, 28),
             "BinaryNet-style CNN for digits; method= picks any method of the methods table", {"method": "float"}),
    ZooEntry("xnor_resnet18", xnor_resnet18, (3, 224, 224), "XNOR-Net ResNet-18", {"method": "float"}),
    ZooEntry("birealnet18", birealnet18, (3, 224, 224), "Bi-Real Net 18", {"method": "float"}),
    ZooEntry("quicknet", quicknet, (3, 224, 224), "QuickNet-style BNN (Larq zoo)", {"method": "float"}),
    ZooEntry("mobilenet_v1", mobilenet_v1, (3, 224, 224), "MobileNetV1, width multiplier width="),
    ZooEntry("mobilenet_v2", mobilenet_v2, (3, 224, 224), "MobileNetV2, width multiplier width="),
    ZooEntry("hetconv_vgg16", hetconv_vgg16, (3, 32, 32), "HetConv VGG-16 (CIFAR shape), part=P", {"part": 1}),
    ZooEntry("hetconv_resnet", hetconv_resnet, (3, 32, 32), "HetConv CIFAR ResNet-(6n+2), part=P", {"part": 1}),
)
MODELS: dict[str, ZooEntry] = {e.name: e for e in _ENTRIES}


def get_entry(name: str) -> ZooEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown zoo model {name!r}; available: {', '.join(MODELS)}") from None


def list_models() -> list[str]:
    return list(MODELS)


def create(name: str, **kwargs) -> nn.Module:
    """Build zoo model `name`; kwargs go to its builder (num_classes, in_channels, method, ...)."""
    return get_entry(name).builder(**kwargs)


def create_float_twin(name: str, **kwargs) -> nn.Module:
    """The same architecture in full precision (the baseline a method is compared with)."""
    entry = get_entry(name)
    return entry.builder(**{**kwargs, **entry.float_twin})
