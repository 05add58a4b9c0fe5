"""HORQ layers as single ops for torch.export.

HORQ's forward is im2col plus a data-dependent residual loop; traced, it is dozens of ATen
nodes with no runtime op each. Wrapped in a custom op it stays one node that maps to the
runtime's HORQ_CONV2D. The op computes with edgebnn.nn.horq itself, so the exported program
still gives the source model's numbers (the converter verifies against it).
"""
from __future__ import annotations

import torch
from torch import nn

from edgebnn.nn.horq import horq_conv2d, horq_linear


@torch.library.custom_op("edgebnn_convert::horq_conv2d", mutates_args=())
def horq_conv2d_op(x: torch.Tensor, w: torch.Tensor, order: int, stride: list[int], padding: list[int],
                   pad_value: float) -> torch.Tensor:
    return horq_conv2d(x, w, order, stride, padding, pad_value).contiguous()


@horq_conv2d_op.register_fake
def _(x, w, order, stride, padding, pad_value):
    kh, kw = w.shape[-2:]
    oh = (x.shape[2] + 2 * padding[0] - kh) // stride[0] + 1
    ow = (x.shape[3] + 2 * padding[1] - kw) // stride[1] + 1
    return x.new_empty(x.shape[0], w.shape[0], oh, ow)


@torch.library.custom_op("edgebnn_convert::horq_linear", mutates_args=())
def horq_linear_op(x: torch.Tensor, w: torch.Tensor, order: int) -> torch.Tensor:
    return horq_linear(x, w, order).contiguous()


@horq_linear_op.register_fake
def _(x, w, order):
    return x.new_empty(x.shape[0], w.shape[0])


class HorqConvAsOp(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        m = self.layer
        y = horq_conv2d_op(x, m.quantized_weight(), m.input_bits, list(m.stride), list(m.padding), m.pad_value)
        return y if m.bias is None else y + m.bias.view(1, -1, 1, 1)


class HorqLinearAsOp(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        m = self.layer
        y = horq_linear_op(x, m.quantized_weight(), m.input_bits)
        return y if m.bias is None else y + m.bias
