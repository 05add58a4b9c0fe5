"""Name -> quantizer tables that BinaryConv2d and BinaryLinear choose from.

Weight quantizers (applied to the latent real-valued weight):
  "none"      float weights
  "sign"      sign(W), hard-tanh STE; latent weights clipped to [-1, 1] (BinaryNet)
  "bc_det"    BinaryConnect deterministic: sign(W), identity STE, clipped
  "bc_stoch"  BinaryConnect stochastic: hard-sigmoid sampling, identity STE, clipped
  "xnor"      α·sign(W), α = mean|W| per output channel (XNOR-Net / BWN)

Input quantizers (applied to the layer input):
  "none"        real inputs
  "sign"        sign, hard-tanh STE (BinaryNet)
  "approx_sign" sign, Bi-Real ApproxSign backward
  "rsign"       ReActNet RSign (learnable per-channel threshold)
  "xnor"        sign, hard-tanh STE, output rescaled by XNOR-Net's K / β
  "horq"        HORQ order-K residual approximation per patch (K = input_bits)
  "hwgq"        HWGQ k-bit half-wave quantizer (k = input_bits)
"""
from __future__ import annotations

import torch
from torch import nn

from .binaryconnect import binaryconnect_det, binaryconnect_eval, binaryconnect_stoch
from .hwgq import HWGQ
from .react import RSign
from .sign import approx_sign, binary_sign, sign_ste
from .xnor import xnor_weight

WEIGHT_QUANTIZERS = ("none", "sign", "bc_det", "bc_stoch", "xnor")
INPUT_QUANTIZERS = ("none", "sign", "approx_sign", "rsign", "xnor", "horq", "hwgq")

# Methods whose latent weights are clipped to [-1, 1] after every update.
CLIPPED_WEIGHT_QUANTIZERS = ("sign", "bc_det", "bc_stoch")

# Input quantizers whose output is ±1, so that padding with 0 is a third value.
BINARY_INPUT_QUANTIZERS = ("sign", "approx_sign", "rsign", "xnor")


def quantize_weight(w: torch.Tensor, kind: str, training: bool, stochastic_eval: str = "sign"):
    if kind == "none":
        return w
    if kind == "sign":
        return sign_ste(w) if training else binary_sign(w)
    if kind == "bc_det":
        return binaryconnect_det(w)
    if kind == "bc_stoch":
        return binaryconnect_stoch(w) if training else binaryconnect_eval(w, stochastic_eval)
    if kind == "xnor":
        return xnor_weight(w)
    raise ValueError(f"unknown weight quantizer {kind!r}; use one of {WEIGHT_QUANTIZERS}")


class Sign(nn.Module):
    """sign with the hard-tanh STE, as a module."""

    def forward(self, x):
        return sign_ste(x)


class ApproxSignActivation(nn.Module):
    """sign with Bi-Real's ApproxSign backward, as a module."""

    def forward(self, x):
        return approx_sign(x)


def make_input_quantizer(kind: str, channels: int, bits: int = 2, hwgq_backward: str = "clipped") -> nn.Module:
    """The elementwise part of an input quantizer (HORQ works on patches, elsewhere)."""
    if kind in ("none", "horq"):
        return nn.Identity()
    if kind in ("sign", "xnor"):
        return Sign()
    if kind == "approx_sign":
        return ApproxSignActivation()
    if kind == "rsign":
        return RSign(channels)
    if kind == "hwgq":
        return HWGQ(bits, hwgq_backward)
    raise ValueError(f"unknown input quantizer {kind!r}; use one of {INPUT_QUANTIZERS}")
