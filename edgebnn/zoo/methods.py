"""Compression methods as interchangeable layer factories.

A zoo network is written once against a MethodSpec; the spec decides what a
"conv" or "linear" slot becomes (float conv, HetConv, BinaryConv2d with some
quantizers), including the activation in front of it. That is what lets the
methods table train *the same backbone* with every method.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from ..nn import BinaryConv2d, BinaryLinear, HetConv2d


@dataclass(frozen=True)
class MethodSpec:
    name: str
    weight_quant: str = "none"
    input_quant: str = "none"
    input_bits: int = 2  # HORQ order / HWGQ bits
    part: int = 1  # HetConv part P (1 = ordinary conv)
    pad_value: float = 0.0
    stochastic_eval: str = "sign"
    description: str = ""

    @property
    def is_float(self) -> bool:
        return self.weight_quant == "none" and self.input_quant == "none"

    @property
    def real_activation(self) -> bool:
        """True when the layer sees real inputs, so a ReLU sits in front of it."""
        return self.input_quant == "none"

    def conv_layer(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1,
                   padding: int | None = None) -> nn.Module:
        """The convolution alone: float, HetConv or BinaryConv2d (quantizers inside)."""
        padding = kernel_size // 2 if padding is None else padding
        if not self.is_float:
            return BinaryConv2d(
                in_ch, out_ch, kernel_size, stride, padding,
                weight_quant=self.weight_quant, input_quant=self.input_quant, input_bits=self.input_bits,
                pad_value=self.pad_value, stochastic_eval=self.stochastic_eval,
            )
        # HetConv where P divides both channel counts (never the 3-channel stem).
        if self.part > 1 and in_ch % self.part == 0 and out_ch % self.part == 0 and padding == kernel_size // 2:
            return HetConv2d(in_ch, out_ch, kernel_size, self.part, stride)
        return nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, bias=False)

    def conv(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1,
             padding: int | None = None) -> nn.Module:
        """Activation + convolution for one slot of a pre-activation block (BN comes before)."""
        conv = self.conv_layer(in_ch, out_ch, kernel_size, stride, padding)
        return nn.Sequential(nn.ReLU(), conv) if self.real_activation else conv

    def linear(self, in_features: int, out_features: int) -> nn.Module:
        if self.is_float:
            layer = nn.Linear(in_features, out_features, bias=False)
        else:
            layer = BinaryLinear(
                in_features, out_features,
                weight_quant=self.weight_quant, input_quant=self.input_quant, input_bits=self.input_bits,
                stochastic_eval=self.stochastic_eval,
            )
        return nn.Sequential(nn.ReLU(), layer) if self.real_activation else layer


METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in (
        MethodSpec("float", description="full precision (32-bit weights and activations)"),
        MethodSpec("bnn", "sign", "sign", description="BinaryNet: sign weights, sign activations"),
        MethodSpec("bc_det", "bc_det", description="BinaryConnect deterministic (binary weights, real activations)"),
        MethodSpec("bc_stoch", "bc_stoch", description="BinaryConnect stochastic (binary weights, real activations)"),
        MethodSpec("xnor", "xnor", "xnor", description="XNOR-Net: α·sign(W), β·sign(X)"),
        MethodSpec("horq", "xnor", "horq", 2, description="HORQ order-K inputs, α·sign(W) weights"),
        MethodSpec("hwgq", "xnor", "hwgq", 2, description="HWGQ k-bit activations, α·sign(W) weights"),
        MethodSpec("bireal", "xnor", "approx_sign", description="Bi-Real: ApproxSign inputs, α·sign(W) weights"),
        MethodSpec("react", "xnor", "rsign", description="ReActNet: RSign inputs, α·sign(W) weights"),
        MethodSpec("hetconv", part=4, description="HetConv part P, float"),
    )
}


def method_spec(method: str | MethodSpec, bits: int | None = None, part: int | None = None,
                pad_value: float | None = None, stochastic_eval: str | None = None) -> MethodSpec:
    """Look a method up by name and apply the knobs the caller set."""
    if isinstance(method, MethodSpec):
        spec = method
    elif method in METHODS:
        spec = METHODS[method]
    else:
        raise ValueError(f"unknown method {method!r}; use one of {sorted(METHODS)}")
    changes = {k: v for k, v in dict(input_bits=bits, part=part, pad_value=pad_value,
                                     stochastic_eval=stochastic_eval).items() if v is not None}
    return replace(spec, **changes)
