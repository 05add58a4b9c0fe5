"""Model zoo: binary, HetConv and MobileNet-style networks, each with a float twin,
plus the small pretrained models shipped in the package."""
from .methods import METHODS, MethodSpec, method_spec
from .pretrained import PRETRAINED_DIR, load_pretrained, load_sample_digits, pretrained_info, pretrained_names
from .registry import MODELS, ZooEntry, create, create_float_twin, get_entry, list_models

__all__ = [
    "METHODS",
    "MODELS",
    "MethodSpec",
    "PRETRAINED_DIR",
    "ZooEntry",
    "create",
    "create_float_twin",
    "get_entry",
    "list_models",
    "load_pretrained",
    "load_sample_digits",
    "method_spec",
    "pretrained_info",
    "pretrained_names",
]
