"""Weight size and operation counts of a model, as the methods table reports them.

Weight size counts what inference stores: 1 bit per binarized weight plus a
float α per output channel where the method has one, 32 bits for every other
parameter (BatchNorm running statistics are excluded: they fold into the
affine scale/shift that is already counted).

Operations count the multiply-accumulates of convolutions and linear layers
(the rest is elementwise and small here), split by what executes them:
  float_macs    real × real
  addonly_macs  real × ±1 (BinaryConnect): a sign-select add, no multiply
  binary_macs   bit × bit, one per bit-plane pass (xnor/and + popcount):
                K passes for HORQ order K, k passes for HWGQ k-bit
`ops` follows Bi-Real Net / ReActNet: FLOPs + BOPs / 64 (64 bit-ops per
64-bit XOR+POPCNT word).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .binary import BinaryConv2d, BinaryLinear
from .hetconv import HetConv2d


@dataclass
class OpCount:
    float_macs: int = 0
    addonly_macs: int = 0
    binary_macs: int = 0

    @property
    def ops(self) -> float:
        return self.float_macs + self.addonly_macs + self.binary_macs / 64


def _bit_planes(layer) -> int:
    """Bit-planes a binary-weight layer's input is split into (0: real input)."""
    if layer.input_quant in ("horq", "hwgq"):
        return layer.input_bits
    return 1 if layer.binary_input else 0


def _is_binary_weight(layer) -> bool:
    if layer.weight_quant == "none":
        return False
    # A stochastic BinaryConnect model evaluated with its real weights is float.
    return not (layer.weight_quant == "bc_stoch" and layer.stochastic_eval == "real")


def _layer_macs(module: nn.Module, out: torch.Tensor) -> int:
    if isinstance(module, HetConv2d):
        return out[0, 0].numel() * module.macs_per_position()
    if isinstance(module, (nn.Conv2d, BinaryConv2d)):
        groups = getattr(module, "groups", 1)
        kh, kw = module.kernel_size
        return out[0].numel() * (module.in_channels // groups) * kh * kw
    if isinstance(module, (nn.Linear, BinaryLinear)):
        return out[0].numel() * module.in_features
    return 0


@torch.no_grad()
def count_ops(model: nn.Module, example: torch.Tensor) -> OpCount:
    """Per-sample operation counts, measured by running `example` (batch 1 is enough)."""
    counts = OpCount()

    def hook(module, _inputs, out):
        macs = _layer_macs(module, out)
        if isinstance(module, (BinaryConv2d, BinaryLinear)) and _is_binary_weight(module):
            planes = _bit_planes(module)
            if planes:
                counts.binary_macs += macs * planes
            else:
                counts.addonly_macs += macs
        else:
            counts.float_macs += macs

    layers = (nn.Conv2d, nn.Linear, BinaryConv2d, BinaryLinear, HetConv2d)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, layers)]
    was_training = model.training
    try:
        model.eval()
        model(example[:1])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return counts


def weight_bits(model: nn.Module) -> int:
    """Bits of stored weights at inference (see the module docstring)."""
    bits = 0
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if name == "weight" and isinstance(module, (BinaryConv2d, BinaryLinear)) and _is_binary_weight(module):
                bits += param.numel()
                if module.weight_quant == "xnor":
                    bits += 32 * param.shape[0]  # α per output channel
            else:
                bits += 32 * param.numel()
    return bits
