"""BinaryConv2d and BinaryLinear: a convolution / linear layer whose weight
and input go through the quantizers named in `edgebnn.nn.quantizers`.

The layer owns its input quantizer, so a block reads BN -> BinaryConv2d and
the exported graph shows BN -> sign -> conv (the order XNOR-Net trains with,
and the one the converter folds into a threshold).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from .binaryconnect import clip_weights_
from .horq import horq_conv2d, horq_linear
from .quantizers import (
    BINARY_INPUT_QUANTIZERS,
    CLIPPED_WEIGHT_QUANTIZERS,
    INPUT_QUANTIZERS,
    WEIGHT_QUANTIZERS,
    make_input_quantizer,
    quantize_weight,
)
from .xnor import xnor_input_scale_conv, xnor_input_scale_linear


class _QuantizedMixin:
    """What BinaryConv2d and BinaryLinear share: quantizer choice and clipping."""

    def _init_quantizers(self, channels, weight_quant, input_quant, input_bits, hwgq_backward, stochastic_eval):
        if weight_quant not in WEIGHT_QUANTIZERS:
            raise ValueError(f"unknown weight_quant {weight_quant!r}; use one of {WEIGHT_QUANTIZERS}")
        if input_quant not in INPUT_QUANTIZERS:
            raise ValueError(f"unknown input_quant {input_quant!r}; use one of {INPUT_QUANTIZERS}")
        self.weight_quant = weight_quant
        self.input_quant = input_quant
        self.input_bits = input_bits
        self.stochastic_eval = stochastic_eval
        self.input_quantizer = make_input_quantizer(input_quant, channels, input_bits, hwgq_backward)

    def quantized_weight(self) -> torch.Tensor:
        return quantize_weight(self.weight, self.weight_quant, self.training, self.stochastic_eval)

    @property
    def clips_weights(self) -> bool:
        return self.weight_quant in CLIPPED_WEIGHT_QUANTIZERS

    def clip_weights_(self) -> None:
        """Call after each optimiser step (BinaryConnect / BinaryNet)."""
        if self.clips_weights:
            clip_weights_(self.weight)

    def _reset(self, fan_in):
        if self.weight_quant in ("bc_det", "bc_stoch"):
            # BinaryConnect draws latent weights over the whole clip range (its
            # Glorot-scaled H, in units of H). For the stochastic variant this
            # matters: with small weights p = hard_sigmoid(w) ≈ 1/2 and the
            # sampled ±1 are pure noise (E[w_b] = w, Var = 1 - w²).
            nn.init.uniform_(self.weight, -1.0, 1.0)
        else:
            # Kaiming-uniform like nn.Conv2d. For sign-based quantizers the
            # scale only sets how fast signs flip under the optimiser.
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)


class BinaryConv2d(_QuantizedMixin, nn.Module):
    """2-D convolution with quantized weights and inputs.

    pad_value: 0 pads the (quantized) input with zeros, a third value next
    to ±1 that the runtime corrects for at the borders; 1 pads with +1 ("one
    padding"), which keeps every tap binary. A model must be trained with the
    padding it is deployed with.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size=3,
        stride=1,
        padding=0,
        bias: bool = False,
        weight_quant: str = "xnor",
        input_quant: str = "sign",
        input_bits: int = 2,
        pad_value: float = 0.0,
        hwgq_backward: str = "clipped",
        stochastic_eval: str = "sign",
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        if pad_value not in (0, 1):
            raise ValueError(f"pad_value must be 0 or 1, got {pad_value!r}")
        self.pad_value = float(pad_value)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self._init_quantizers(in_channels, weight_quant, input_quant, input_bits, hwgq_backward, stochastic_eval)
        self._reset(in_channels * self.kernel_size[0] * self.kernel_size[1])

    def forward(self, x):
        w = self.quantized_weight()
        if self.input_quant == "horq":
            y = horq_conv2d(x, w, self.input_bits, self.stride, self.padding, self.pad_value)
        else:
            y = self._conv(self.input_quantizer(x), w)
            if self.input_quant == "xnor":
                y = y * xnor_input_scale_conv(x, self.kernel_size, self.stride, self.padding)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    def _conv(self, x, w):
        if self.pad_value == 0 or self.padding == (0, 0):
            return F.conv2d(x, w, None, self.stride, self.padding)
        ph, pw = self.padding
        x = F.pad(x, (pw, pw, ph, ph), value=self.pad_value)
        return F.conv2d(x, w, None, self.stride, 0)

    @property
    def binary_input(self) -> bool:
        return self.input_quant in BINARY_INPUT_QUANTIZERS

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, pad_value={self.pad_value:g}, weight_quant={self.weight_quant}, "
            f"input_quant={self.input_quant}, bias={self.bias is not None}"
        )


class BinaryLinear(_QuantizedMixin, nn.Module):
    """Fully-connected layer with quantized weights and inputs (BinaryNet's MLP)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        weight_quant: str = "xnor",
        input_quant: str = "sign",
        input_bits: int = 2,
        hwgq_backward: str = "clipped",
        stochastic_eval: str = "sign",
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self._init_quantizers(in_features, weight_quant, input_quant, input_bits, hwgq_backward, stochastic_eval)
        self._reset(in_features)

    def forward(self, x):
        w = self.quantized_weight()
        if self.input_quant == "horq":
            y = horq_linear(x, w, self.input_bits)
        else:
            y = F.linear(self.input_quantizer(x), w)
            if self.input_quant == "xnor":
                y = y * xnor_input_scale_linear(x)
        if self.bias is not None:
            y = y + self.bias
        return y

    @property
    def binary_input(self) -> bool:
        return self.input_quant in BINARY_INPUT_QUANTIZERS

    def extra_repr(self):
        return (
            f"{self.in_features}, {self.out_features}, weight_quant={self.weight_quant}, "
            f"input_quant={self.input_quant}, bias={self.bias is not None}"
        )


def clip_binary_weights_(model: nn.Module) -> None:
    """Clip the latent weights of every layer that asks for it; call after optimizer.step()."""
    for module in model.modules():
        if isinstance(module, _QuantizedMixin):
            module.clip_weights_()
