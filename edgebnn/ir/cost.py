"""Operation counts and weight sizes per op, for `inspect`, reports and the profiler's estimates."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .dtypes import DType
from .graph import Graph
from .ops import Attr, OpType


@dataclass
class OpCost:
    flops: int = 0          # float (or int8) multiply-adds counted as 2
    binary_ops: int = 0     # binary multiply-adds counted as 2 (xor-popcount work)
    weight_bytes: int = 0   # constant bytes as stored (packed)
    weight_fp32_bytes: int = 0  # the same constants as fp32


def op_cost(graph: Graph, index: int) -> OpCost:
    op = graph.ops[index]
    t = graph.tensors
    out = t[op.outputs[0]]
    c = OpCost()
    for i in op.inputs:
        if i is not None and t[i].is_const:
            c.weight_bytes += t[i].nbytes
            c.weight_fp32_bytes += math.prod(t[i].shape) * 4
    x = t[op.inputs[0]]
    w = t[op.inputs[1]] if len(op.inputs) > 1 and op.inputs[1] is not None else None
    pixels = math.prod(out.shape[:-1])
    oc = out.shape[-1]
    ty = op.type
    if ty is OpType.CONV2D:
        c.flops = 2 * pixels * oc * math.prod(w.shape[1:])
    elif ty is OpType.DEPTHWISE_CONV2D:
        c.flops = 2 * pixels * oc * w.shape[0] * w.shape[1]
    elif ty is OpType.FULLY_CONNECTED:
        c.flops = 2 * pixels * oc * w.shape[1]
    elif ty is OpType.HETCONV2D:
        w1 = t[op.inputs[2]]
        c.flops = 2 * pixels * oc * (math.prod(w.shape[1:]) + w1.shape[1])
    elif ty in (OpType.BCONV2D, OpType.BFULLY_CONNECTED):
        c.binary_ops = 2 * pixels * oc * math.prod(w.shape[1:])
    elif ty is OpType.KBIT_CONV2D:
        c.binary_ops = 2 * pixels * oc * math.prod(w.shape[1:]) * int(op.attrs.get(Attr.BITS, (1,))[0])
    elif ty is OpType.HORQ_CONV2D:
        c.binary_ops = 2 * pixels * oc * math.prod(w.shape[1:]) * int(op.attrs.get(Attr.ORDER, (1,))[0])
    elif ty in (OpType.MAX_POOL2D, OpType.AVG_POOL2D):
        c.flops = math.prod(out.shape) * math.prod(op.attrs.get(Attr.KERNEL, (1, 1)))
    elif ty is OpType.BMAX_POOL2D:
        c.binary_ops = math.prod(out.shape) * math.prod(op.attrs.get(Attr.KERNEL, (1, 1)))
    elif ty in (OpType.ADD, OpType.AFFINE, OpType.PRELU, OpType.GLOBAL_AVG_POOL, OpType.SOFTMAX,
                OpType.RELU, OpType.RELU6, OpType.HARDTANH, OpType.SIGN_PACK, OpType.QUANTIZE,
                OpType.DEQUANTIZE, OpType.ABS, OpType.CHANNEL_MEAN, OpType.MUL):
        c.flops = math.prod(x.shape) * (2 if ty in (OpType.AFFINE, OpType.SOFTMAX) else 1)
    return c


def layer_kind(graph: Graph, index: int) -> str:
    """binary, k-bit, int8 or fp32: what arithmetic the layer's weights use."""
    op = graph.ops[index]
    if op.type in (OpType.BCONV2D, OpType.BFULLY_CONNECTED, OpType.BMAX_POOL2D):
        return "binary"
    if op.type in (OpType.KBIT_CONV2D, OpType.HORQ_CONV2D):
        return "k-bit"
    if any(i is not None and graph.tensors[i].dtype is DType.I8 for i in op.inputs + op.outputs):
        return "int8"
    if op.type in (OpType.SIGN_PACK, OpType.UNPACK, OpType.RESHAPE, OpType.CONCAT, OpType.TRANSPOSE,
                   OpType.CHANNEL_SHUFFLE):
        return "data"
    return "fp32"
