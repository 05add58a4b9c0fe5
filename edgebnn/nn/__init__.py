"""Training-side layers for binary, HetConv and MobileNet-style networks.

Everything here exports with torch.export and computes exactly what the C
runtime computes (sign(0) = +1, zero padding as a third value unless
pad_value=1, XNOR/HORQ scales as documented in each module).
"""
from .binary import BinaryConv2d, BinaryLinear, clip_binary_weights_
from .binaryconnect import binaryconnect_det, binaryconnect_stoch, hard_sigmoid
from .blocks import ChannelShuffle, DepthwiseSeparable, InvertedResidual, channel_shuffle
from .cost import OpCount, count_ops, weight_bits
from .hetconv import HetConv2d
from .horq import horq_approx, horq_conv2d, horq_linear
from .hwgq import HWGQ, gaussian_step, hwgq_quantize
from .quantizers import INPUT_QUANTIZERS, WEIGHT_QUANTIZERS, ApproxSignActivation, Sign
from .react import RPReLU, RSign
from .sign import approx_sign, binary_sign, sign_identity_ste, sign_ste
from .xnor import xnor_input_scale_conv, xnor_input_scale_linear, xnor_weight

__all__ = [
    "ApproxSignActivation",
    "BinaryConv2d",
    "BinaryLinear",
    "ChannelShuffle",
    "DepthwiseSeparable",
    "HWGQ",
    "HetConv2d",
    "INPUT_QUANTIZERS",
    "InvertedResidual",
    "OpCount",
    "RPReLU",
    "RSign",
    "Sign",
    "WEIGHT_QUANTIZERS",
    "approx_sign",
    "binary_sign",
    "binaryconnect_det",
    "binaryconnect_stoch",
    "channel_shuffle",
    "clip_binary_weights_",
    "count_ops",
    "gaussian_step",
    "hard_sigmoid",
    "horq_approx",
    "horq_conv2d",
    "horq_linear",
    "hwgq_quantize",
    "sign_identity_ste",
    "sign_ste",
    "weight_bits",
    "xnor_input_scale_conv",
    "xnor_input_scale_linear",
    "xnor_weight",
]
