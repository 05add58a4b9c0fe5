"""Export the packed IR to a TFLite flatbuffer with Larq Compute Engine's custom ops.

Binary ops become LCE's ops with their documented options and bit layout; the float ops a
binary network needs around them become TFLite builtins.

Bit layout: a packed (bit1) tensor [..., C] becomes an int32 tensor [..., ceil(C/32)]: element
c is bit c % 32 of word c // 32, bit 1 = -1 (LCE's "canonical" order), padding bits 0. That is
our uint64 layout cut in 32-bit halves, so one repack per constant.

Arithmetic, exact unless said:
- SIGN_PACK -> LceQuantize (bit 1 where x < 0); thresholds t become ADD(x, -t) first, exact in
  IEEE arithmetic: x + (-t) < 0 exactly when x < t (gradual underflow keeps the sign).
- BCONV2D -> LceBconv2d on packed input. LCE counts the differing bits p over K = kh*kw*C taps,
  so the ±1 dot product is K - 2p (one padding: pad taps are +1 values). Grouped convs: the
  filter packs C/groups channels per tap and channels_in is C (LCE needs C/groups % 32 == 0). Float output is
  multiplier * dot + bias; LCE folds it into (2p) * (-multiplier) + (bias + K * multiplier),
  which rounds differently in the last bits (within 1e-6 relative of the output's range).
  A fused activation becomes a separate RELU / RELU6 (LCE clamps before its multiplier).
  Packed output: LCE writes bit 1 when p > T. For direction +1, dot < t is p > (K - t) / 2, so
  T = floor((K - t) / 2). Direction -1 (dot > t) flips that output channel's weights (dot -> -dot)
  and uses -t. LCE refuses packed output with zero SAME padding; those layers write the float
  direction * (dot - t) (small integers, exact) and LceQuantize it.
- BFULLY_CONNECTED -> LceBconv2d 1x1 on [N, 1, 1, K] (reshapes of packed words).
- BMAX_POOL2D -> LceBMaxPool2d (AND of the bits = max of ±1), UNPACK -> LceDequantize.
- RESHAPE of packed bits reshapes the words when both innermost sizes are multiples of 32 (then
  the words hold the same bits in the same order), else goes LceDequantize, RESHAPE, LceQuantize.
- AFFINE -> MUL then ADD (two roundings, like the runtime's x * s + b without a fused multiply-add).
- Float conv / pool padding that is neither SAME nor VALID for its shape (PyTorch's symmetric
  padding, e.g. a ResNet stem's 7x7/2 conv with 3 and its 3x3/2 max pool with 1) -> PAD, then
  the op with VALID padding: zeros before a conv and before an average pool that counts its
  padding; before a max pool, zeros when its input comes out of a ReLU (values >= 0: a zero tap
  changes no maximum, and XNNPACK takes PAD), else PADV2 with -inf (a padded tap never wins, as
  in the runtime, but XNNPACK leaves PADV2 to TFLite's own kernel). Only a window made of padding
  alone (padding >= kernel, which PyTorch refuses) would differ: the runtime writes 0 there.

The TFLite model's input is NHWC (TFLite's layout) even when the .ebnn input is fed NCHW.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebnn.format.writer import atomic_write
from edgebnn.errors import UserError
from edgebnn.ir.builder import resolve_padding
from edgebnn.ir.dtypes import DType, unpack_bits
from edgebnn.ir.graph import Graph
from edgebnn.ir.ops import Activation, Attr, OpType

from ..tflite.flexbuffers import dumps
from .tflite_fb import FLOAT32, INT32, ModelBuilder, Table

# BuiltinOperator and BuiltinOptions codes (tensorflow/lite/schema/schema.fbs)
ADD, AVERAGE_POOL_2D, CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED = 0, 1, 3, 4, 9
MAX_POOL_2D, MUL, RELU, RELU6, RESHAPE, SOFTMAX, CUSTOM, PAD, MEAN, PADV2 = 17, 18, 19, 21, 22, 25, 32, 34, 40, 60
OPT_CONV, OPT_DW, OPT_POOL, OPT_FC, OPT_SOFTMAX, OPT_ADD, OPT_RESHAPE, OPT_MUL, OPT_REDUCER = \
    1, 2, 5, 8, 9, 11, 17, 21, 27
SAME, VALID = 0, 1
_FUSED = {Activation.NONE: 0, Activation.RELU: 1, Activation.RELU6: 3}


def words32(c: int) -> int:
    return (c + 31) // 32


def pack32(pm1: np.ndarray) -> np.ndarray:
    """±1 values -> int32 words along the last axis in LCE's layout (bit 1 = -1, padding bits 0)."""
    a = np.asarray(pm1)
    c = a.shape[-1]
    bits = np.zeros(a.shape[:-1] + (words32(c) * 32,), np.uint8)
    bits[..., :c] = a < 0
    packed = np.packbits(bits.reshape(-1, words32(c) * 4, 8), axis=-1, bitorder="little")
    return packed.reshape(-1).view("<i4").reshape(a.shape[:-1] + (words32(c),)).astype(np.int32)


class _Export:
    def __init__(self, graph: Graph):
        self.g = graph
        self.m = ModelBuilder()
        self.tid: dict[int, int] = {}   # IR tensor -> TFLite tensor
        self.n = 0
        self.op_name = ""

    # -- tensors -----------------------------------------------------------------------
    def fail(self, op, why: str):
        raise UserError(f"cannot export {op.type.name} '{op.name}' to LCE: {why}")

    def shape(self, i: int) -> tuple[int, ...]:
        return tuple(self.g.tensors[i].shape)

    def is_bits(self, i: int) -> bool:
        return self.g.tensors[i].dtype is DType.BIT1

    def fresh(self, name: str, shape, ttype=FLOAT32) -> int:
        self.n += 1
        return self.m.tensor(f"{name}#{self.n}", shape, ttype)

    def act_out(self, i: int) -> int:
        """The TFLite tensor an op writes for IR tensor i."""
        t = self.g.tensors[i]
        # boundary tensors keep their names; inner ones take their op's (the importer's layer names)
        name = t.name if i in self.g.inputs or i in self.g.outputs or not self.op_name else self.op_name
        if t.dtype is DType.BIT1:
            tid = self.m.tensor(name, t.shape[:-1] + (words32(t.shape[-1]),), INT32)
        elif t.dtype is DType.F32:
            tid = self.m.tensor(name, t.shape, FLOAT32)
        else:
            raise UserError(f"cannot export tensor '{t.name}' to LCE: {t.dtype.short} activations are not supported "
                            "(float and packed binary are)")
        self.tid[i] = tid
        return tid

    def src(self, i: int, op) -> int:
        if i in self.tid:
            return self.tid[i]
        t = self.g.tensors[i]
        if t.data is None:
            self.fail(op, f"input '{t.name}' is computed nowhere")
        if t.dtype is not DType.F32:
            self.fail(op, f"constant '{t.name}' is {t.dtype.short} where float is expected")
        self.tid[i] = self.m.const(t.name, t.data.reshape(t.shape).astype(np.float32))
        return self.tid[i]

    def vec(self, i, n: int, default: float, op) -> np.ndarray:
        if i is None:
            return np.full(n, default, np.float32)
        t = self.g.tensors[i]
        if t.data is None:
            self.fail(op, f"'{t.name}' must be a constant")
        return np.asarray(t.data, np.float64).reshape(n)

    def const_pm1(self, i: int, op) -> np.ndarray:
        t = self.g.tensors[i]
        if t.data is None or t.dtype is not DType.BIT1:
            self.fail(op, f"weights '{t.name}' must be constant packed bits")
        return unpack_bits(t.data.reshape(t.shape[:-1] + (-1,)), t.shape[-1])

    def padding(self, op, in_hw, kernel, dil=(1, 1)) -> int:
        pads = tuple(op.attrs.get(Attr.PADS, (0, 0, 0, 0)))
        strides = tuple(op.attrs.get(Attr.STRIDES, (1, 1)))
        if pads == (0, 0, 0, 0):
            return VALID
        if pads == resolve_padding("same", in_hw, kernel, strides, dil):
            return SAME
        self.fail(op, f"padding {pads} is neither TFLite's SAME nor VALID for this shape")

    def non_negative(self, i: int) -> bool:
        """Whether IR tensor i is written by a ReLU / ReLU6 (on its own or fused into its producer)."""
        for op in self.g.ops:
            if i in op.outputs:
                if op.type in (OpType.RELU, OpType.RELU6):
                    return True
                return int(op.attrs.get(Attr.ACTIVATION, (0,))[0]) in (Activation.RELU, Activation.RELU6)
        return False

    def float_padding(self, op, x: int, x_shape, kernel, dil=(1, 1), fill: float = 0.0,
                      explicit: bool = False) -> tuple[int, int]:
        """(input, TFLite padding) for a float op: SAME or VALID where one matches, else the input
        padded explicitly (PAD with zeros, PADV2 with `fill` otherwise) and VALID; `explicit` pads
        even where SAME matches (an average pool that counts its padding)."""
        pads = tuple(op.attrs.get(Attr.PADS, (0, 0, 0, 0)))
        strides = tuple(op.attrs.get(Attr.STRIDES, (1, 1)))
        if pads == (0, 0, 0, 0):
            return x, VALID
        if not explicit and pads == resolve_padding("same", x_shape[1:3], kernel, strides, dil):
            return x, SAME
        t, l, b, r = pads
        n, h, w, c = x_shape
        y = self.fresh(f"{op.name}.padded", (n, h + t + b, w + l + r, c))
        widths = self.m.const(f"{op.name}.paddings", np.asarray([[0, 0], [t, b], [l, r], [0, 0]], np.int32))
        if fill == 0.0:
            self.m.op(PAD, [x, widths], [y])
        else:
            value = self.m.const(f"{op.name}.pad_value", np.asarray([fill], np.float32))
            self.m.op(PADV2, [x, widths, value], [y])
        return y, VALID

    # -- emitted ops ---------------------------------------------------------------------
    def custom(self, name: str, inputs, outputs, options: dict | None = None):
        self.m.op(CUSTOM, inputs, outputs, custom=name, custom_options=dumps(options or {}))

    def quantize(self, x: int, shape, name: str, out: int | None = None) -> int:
        y = out if out is not None else self.fresh(name, shape[:-1] + (words32(shape[-1]),), INT32)
        self.custom("LceQuantize", [x], [y])
        return y

    def dequantize(self, x: int, shape, name: str, out: int | None = None) -> int:
        y = out if out is not None else self.fresh(name, shape)
        self.custom("LceDequantize", [x], [y])
        return y

    def reshape(self, x: int, shape, out: int, name: str):
        s = self.m.const(f"{name}.shape", np.asarray(shape, np.int32))
        self.m.op(RESHAPE, [x, s], [out], OPT_RESHAPE, Table({0: ("A", np.asarray(shape, np.int32))}))

    def unary(self, code: int, x: int, out: int):
        self.m.op(code, [x], [out])

    # -- per op ---------------------------------------------------------------------------
    def bconv(self, op, x: int, x_shape, pm1: np.ndarray, out_ir: int, out_shape, attrs: dict):
        """LceBconv2d on packed input x [N,H,W,words]; pm1 [O,kh,kw,C/groups]; output per op's epilogue."""
        o, kh, kw, c = pm1.shape
        groups = int(attrs.get(Attr.GROUPS, (1,))[0])
        if groups > 1 and c % 32:
            # LCE finds the groups from the filter's words per tap: whole 32-bit words per group only
            self.fail(op, f"a grouped binary conv with {c} channels per group is not exportable to LCE "
                          "(LCE needs a multiple of 32 channels per group)")
        strides = tuple(attrs.get(Attr.STRIDES, (1, 1)))
        dil = tuple(attrs.get(Attr.DILATIONS, (1, 1)))
        pad = self.padding(op, x_shape[1:3], (kh, kw), dil) if Attr.PADS in attrs else VALID
        pad_value = int(attrs.get(Attr.PAD_VALUE, (0,))[0])
        act = int(attrs.get(Attr.ACTIVATION, (0,))[0])
        options = {"channels_in": c * groups, "dilation_height_factor": dil[0], "dilation_width_factor": dil[1],
                   "fused_activation_function": 0, "pad_values": pad_value if pad == SAME else 0, "padding": pad, "stride_height": strides[0],
                   "stride_width": strides[1]}
        ins = op.inputs + [None] * (6 - len(op.inputs))
        thr_i, dir_i = ins[4], ins[5]
        k = kh * kw * c
        n, oh, ow = out_shape[:3]
        if thr_i is not None:
            thr = np.asarray(self.g.tensors[thr_i].data, np.int64).reshape(o)
            direc = (np.asarray(self.g.tensors[dir_i].data, np.int64).reshape(o) if dir_i is not None
                     else np.ones(o, np.int64))
            if pad == SAME and pad_value == 0:
                # LCE writes packed output only with valid or one padding: float dir * (dot - t), then sign
                f = self.fresh(op.name, (n, oh, ow, o))
                self._bconv_op(op, x, pm1, f, options, mul=direc.astype(np.float32),
                               bias=(-direc * thr).astype(np.float32))
                return self.quantize(f, (n, oh, ow, o), op.name, out=out_ir)
            flip = direc < 0
            pm1 = np.where(flip[:, None, None, None], -pm1, pm1)
            t = np.where(flip, -thr, thr)
            lce_t = np.floor_divide(k - t, 2)
            if lce_t.min() < np.iinfo(np.int32).min or lce_t.max() > np.iinfo(np.int32).max:
                self.fail(op, "a threshold is outside the int32 range")
            return self._bconv_op(op, x, pm1, out_ir, options, thresholds=lce_t.astype(np.int32))
        mul = self.vec(ins[2], o, 1.0, op).astype(np.float32)
        bias = self.vec(ins[3], o, 0.0, op).astype(np.float32)
        if act == Activation.NONE:
            return self._bconv_op(op, x, pm1, out_ir, options, mul=mul, bias=bias)
        y = self._bconv_op(op, x, pm1, self.fresh(op.name, (n, oh, ow, o)), options, mul=mul, bias=bias)
        return self.unary(RELU if act == Activation.RELU else RELU6, y, out_ir)

    def _bconv_op(self, op, x, pm1, out, options, mul=None, bias=None, thresholds=None):
        w = self.m.tensor(f"{op.name}.filter", pm1.shape[:3] + (words32(pm1.shape[3]),), INT32, pack32(pm1))
        ins = [x, w, -1, -1, -1]
        if thresholds is not None:
            ins[4] = self.m.const(f"{op.name}.output_threshold", thresholds)
        else:
            ins[2] = self.m.const(f"{op.name}.post_activation_multiplier", mul)
            ins[3] = self.m.const(f"{op.name}.post_activation_bias", bias)
        self.custom("LceBconv2d", ins, [out], options)
        return out

    def emit(self, op):
        t = op.type
        ins = list(op.inputs)
        y_ir = op.outputs[0]
        y_shape = self.shape(y_ir)
        x_ir = ins[0]
        x_shape = self.shape(x_ir)
        act = int(op.attrs.get(Attr.ACTIVATION, (0,))[0])
        if t is not OpType.SIGN_PACK and x_ir is not None and self.g.tensors[x_ir].dtype not in (DType.F32, DType.BIT1):
            self.fail(op, f"{self.g.tensors[x_ir].dtype.short} layers are not exported (float and binary are)")
        if t is OpType.SIGN_PACK:
            if self.g.tensors[x_ir].dtype is not DType.F32:
                self.fail(op, "the input must be float")
            x = self.src(x_ir, op)
            if len(ins) > 1 and ins[1] is not None:
                neg = -self.vec(ins[1], x_shape[-1], 0.0, op).astype(np.float32)
                shifted = self.fresh(f"{op.name}.shift", x_shape)
                self.m.op(ADD, [x, self.m.const(f"{op.name}.neg_thresholds", neg)], [shifted], OPT_ADD,
                          Table({0: ("b", 0)}))
                x = shifted
            return self.quantize(x, x_shape, op.name, out=self.act_out(y_ir))
        if t is OpType.UNPACK:
            return self.dequantize(self.src(x_ir, op), y_shape, op.name, out=self.act_out(y_ir))
        if t is OpType.BCONV2D:
            return self.bconv(op, self.src(x_ir, op), x_shape, self.const_pm1(ins[1], op), self.act_out(y_ir),
                              y_shape, op.attrs)
        if t is OpType.BFULLY_CONNECTED:
            n, k = x_shape
            x4 = self.fresh(f"{op.name}.x4", (n, 1, 1, words32(k)), INT32)
            self.reshape(self.src(x_ir, op), (n, 1, 1, words32(k)), x4, f"{op.name}.x4")
            pm1 = self.const_pm1(ins[1], op)
            o = pm1.shape[0]
            packed = self.is_bits(y_ir)
            y4 = self.fresh(f"{op.name}.y4", (n, 1, 1, words32(o) if packed else o), INT32 if packed else FLOAT32)
            self.bconv(op, x4, (n, 1, 1, k), pm1.reshape(o, 1, 1, k), y4, (n, 1, 1, o),
                       {Attr.ACTIVATION: op.attrs.get(Attr.ACTIVATION, (0,))})
            out = self.act_out(y_ir)
            return self.reshape(y4, (n, words32(o) if packed else o), out, f"{op.name}.rows")
        if t is OpType.BMAX_POOL2D:
            kh, kw = op.attrs[Attr.KERNEL]
            sh, sw = op.attrs.get(Attr.STRIDES, (kh, kw))
            pad = self.padding(op, x_shape[1:3], (kh, kw))
            self.custom("LceBMaxPool2d", [self.src(x_ir, op)], [self.act_out(y_ir)],
                        {"filter_height": kh, "filter_width": kw, "padding": pad, "stride_height": sh, "stride_width": sw})
            return
        if t is OpType.RESHAPE:
            x = self.src(x_ir, op)
            out = self.act_out(y_ir)
            if not self.is_bits(x_ir):
                return self.reshape(x, y_shape, out, op.name)
            if x_shape[-1] % 32 == 0 and y_shape[-1] % 32 == 0:
                return self.reshape(x, y_shape[:-1] + (y_shape[-1] // 32,), out, op.name)
            f = self.dequantize(x, x_shape, f"{op.name}.unpacked")
            g = self.fresh(f"{op.name}.reshaped", y_shape)
            self.reshape(f, y_shape, g, op.name)
            return self.quantize(g, y_shape, op.name, out=out)
        # float builtins
        x = self.src(x_ir, op)
        if t is OpType.CONV2D or t is OpType.DEPTHWISE_CONV2D:
            w_t = self.g.tensors[ins[1]]
            if w_t.data is None:
                self.fail(op, "weights must be constant")
            wd = w_t.data.reshape(w_t.shape).astype(np.float32)
            dw = t is OpType.DEPTHWISE_CONV2D
            if dw:
                wd = wd.reshape((1,) + wd.shape)
            elif int(op.attrs.get(Attr.GROUPS, (1,))[0]) != 1:
                self.fail(op, "grouped convolutions are not exported")
            oc = wd.shape[3] if dw else wd.shape[0]
            kh, kw = wd.shape[1:3]
            dil = tuple(op.attrs.get(Attr.DILATIONS, (1, 1)))
            strides = tuple(op.attrs.get(Attr.STRIDES, (1, 1)))
            x, pad = self.float_padding(op, x, x_shape, (kh, kw), dil)
            w = self.m.const(f"{op.name}.weights", wd)
            b = self.m.const(f"{op.name}.bias", self.vec(ins[2] if len(ins) > 2 else None, oc, 0.0, op).astype(np.float32))
            opts = Table({0: ("b", pad), 1: ("i", strides[1]), 2: ("i", strides[0])})
            if dw:
                opts.update({3: ("i", oc // x_shape[3]), 4: ("b", _FUSED[act]), 5: ("i", dil[1]), 6: ("i", dil[0])})
            else:
                opts.update({3: ("b", _FUSED[act]), 4: ("i", dil[1]), 5: ("i", dil[0])})
            self.m.op(DEPTHWISE_CONV_2D if dw else CONV_2D, [x, w, b], [self.act_out(y_ir)],
                      OPT_DW if dw else OPT_CONV, opts)
            return
        if t is OpType.FULLY_CONNECTED:
            w = self.src(ins[1], op)
            b = self.src(ins[2], op) if len(ins) > 2 and ins[2] is not None else -1
            self.m.op(FULLY_CONNECTED, [x, w, b], [self.act_out(y_ir)], OPT_FC, Table({0: ("b", _FUSED[act])}))
            return
        if t is OpType.ADD:
            self.m.op(ADD, [x, self.src(ins[1], op)], [self.act_out(y_ir)], OPT_ADD, Table({0: ("b", _FUSED[act])}))
            return
        if t is OpType.AFFINE:
            c = x_shape[-1]
            mid = self.fresh(f"{op.name}.scaled", x_shape)
            self.m.op(MUL, [x, self.m.const(f"{op.name}.scale", self.vec(ins[1], c, 1.0, op).astype(np.float32))],
                      [mid], OPT_MUL, Table({0: ("b", 0)}))
            self.m.op(ADD, [mid, self.m.const(f"{op.name}.bias", self.vec(ins[2], c, 0.0, op).astype(np.float32))],
                      [self.act_out(y_ir)], OPT_ADD, Table({0: ("b", _FUSED[act])}))
            return
        if t is OpType.MAX_POOL2D or t is OpType.AVG_POOL2D:
            kh, kw = op.attrs[Attr.KERNEL]
            sh, sw = op.attrs.get(Attr.STRIDES, (kh, kw))
            if t is OpType.MAX_POOL2D:
                fill = 0.0 if self.non_negative(x_ir) else float("-inf")
                x, pad = self.float_padding(op, x, x_shape, (kh, kw), fill=fill)
            elif int(op.attrs.get(Attr.COUNT_INCLUDE_PAD, (0,))[0]):
                # TFLite's average pool never counts padding: zeros padded in front are counted
                x, pad = self.float_padding(op, x, x_shape, (kh, kw), explicit=True)
            else:
                pad = self.padding(op, x_shape[1:3], (kh, kw))
            self.m.op(MAX_POOL_2D if t is OpType.MAX_POOL2D else AVERAGE_POOL_2D, [x], [self.act_out(y_ir)], OPT_POOL,
                      Table({0: ("b", pad), 1: ("i", sw), 2: ("i", sh), 3: ("i", kw), 4: ("i", kh), 5: ("b", 0)}))
            return
        if t is OpType.GLOBAL_AVG_POOL:
            axes = self.m.const(f"{op.name}.axes", np.asarray([1, 2], np.int32))
            self.m.op(MEAN, [x, axes], [self.act_out(y_ir)], OPT_REDUCER, Table({0: ("B", 1)}))
            return
        if t is OpType.SOFTMAX:
            self.m.op(SOFTMAX, [x], [self.act_out(y_ir)], OPT_SOFTMAX, Table({0: ("f", 1.0)}))
            return
        if t is OpType.RELU or t is OpType.RELU6:
            return self.unary(RELU if t is OpType.RELU else RELU6, x, self.act_out(y_ir))
        self.fail(op, "LCE export supports SIGN_PACK, BCONV2D, BFULLY_CONNECTED, BMAX_POOL2D, UNPACK, RESHAPE, "
                      "CONV2D, DEPTHWISE_CONV2D, FULLY_CONNECTED, ADD, AFFINE, MAX/AVG_POOL2D, GLOBAL_AVG_POOL, "
                      "SOFTMAX, RELU, RELU6")

    def run(self) -> bytes:
        g = self.g
        ins = []
        for i in g.inputs:
            t = g.tensors[i]
            if t.dtype is not DType.F32:
                raise UserError(f"cannot export to LCE: input '{t.name}' is {t.dtype.short}; only float inputs are")
            ins.append(self.act_out(i))
        for op in g.ops:
            self.op_name = op.name
            self.emit(op)
        outs = [self.tid[i] for i in g.outputs]
        return self.m.finish(ins, outs, g.metadata.get("producer", "edgebnn") + " -> edgebnn export --to lce")


def to_lce_bytes(graph: Graph) -> bytes:
    return _Export(graph).run()


def export_lce(graph: Graph, path) -> Path:
    """Write `graph` as an LCE TFLite flatbuffer at `path` (atomically: no partial file on error)."""
    data = to_lce_bytes(graph)
    return atomic_write(path, data)
