"""A small builder for the IR: used by tests and the demo now, by every converter later.

All shapes are NHWC. Each method checks its operands and infers the output shape, so a
graph that builds is a graph the runtime accepts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .dtypes import DType, dtype_of_array, pack_bits
from .graph import MAX_DIMS, Graph, Op, Quant, Tensor
from .ops import Activation, Attr, OpType


@dataclass(frozen=True)
class Value:
    """A handle to a tensor inside the builder."""
    index: int
    builder: "GraphBuilder"

    @property
    def tensor(self) -> Tensor:
        return self.builder.graph.tensors[self.index]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.tensor.shape

    @property
    def dtype(self) -> DType:
        return self.tensor.dtype


def _pair(v, what: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    t = tuple(int(x) for x in v)
    if len(t) != 2:
        raise ValueError(f"{what} must be an int or a pair, got {v!r}")
    return t


def conv_output_size(size: int, k: int, s: int, d: int, p0: int, p1: int) -> int:
    span = (k - 1) * d + 1
    return (size + p0 + p1 - span) // s + 1


def resolve_padding(padding, in_hw, kernel, strides, dilations) -> tuple[int, int, int, int]:
    """'valid', 'same' (TensorFlow rule: extra padding goes bottom/right) or explicit (t,l,b,r)."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode != "same":
            raise ValueError(f"padding must be 'valid', 'same' or (top, left, bottom, right), got {padding!r}")
        pads = []
        for size, k, s, d in zip(in_hw, kernel, strides, dilations):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (t, b), (l, r) = pads
        return (t, l, b, r)
    if isinstance(padding, (int, np.integer)):
        p = int(padding)
        return (p, p, p, p)
    p = tuple(int(x) for x in padding)
    if len(p) == 2:
        return (p[0], p[1], p[0], p[1])
    if len(p) != 4 or min(p) < 0:
        raise ValueError(f"explicit padding must be (top, left, bottom, right) >= 0, got {padding!r}")
    return p


class GraphBuilder:
    def __init__(self):
        self.graph = Graph()
        self._names: set[str] = set()

    # ---- tensors -----------------------------------------------------------------
    def _unique(self, name: str | None, prefix: str) -> str:
        base = name or f"{prefix}{len(self.graph.tensors)}"
        cand, i = base, 1
        while cand in self._names:
            cand, i = f"{base}_{i}", i + 1
        self._names.add(cand)
        return cand

    def _add(self, tensor: Tensor) -> Value:
        if len(tensor.shape) > MAX_DIMS:
            raise ValueError(f"tensor {tensor.name!r} has {len(tensor.shape)} dims; at most {MAX_DIMS} are supported")
        if any(d <= 0 for d in tensor.shape):
            raise ValueError(f"tensor {tensor.name!r} has a non-positive dimension: {tensor.shape}")
        self.graph.tensors.append(tensor)
        return Value(len(self.graph.tensors) - 1, self)

    def input(self, name: str, shape: Sequence[int], dtype="f32", layout: str = "NHWC",
              scale: float | None = None, zero_point: int | None = None) -> Value:
        """A graph input with its runtime (NHWC) shape; `layout='NCHW'` makes users feed NCHW."""
        dt = DType.parse(dtype)
        if dt is DType.BIT1:
            raise ValueError("graph inputs cannot be bit1: feed float and sign_pack inside the graph")
        if layout not in ("NHWC", "NCHW"):
            raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {layout!r}")
        if layout == "NCHW" and len(shape) != 4:
            raise ValueError("layout 'NCHW' needs a 4-D input")
        quant = self._quant(scale, zero_point) if scale is not None else None
        v = self._add(Tensor(self._unique(name, "input"), dt, tuple(int(d) for d in shape),
                             quant=quant, io_layout=layout))
        self.graph.inputs.append(v.index)
        return v

    @staticmethod
    def _quant(scale, zero_point, axis: int = -1) -> Quant:
        s = np.asarray(scale, dtype=np.float32)
        z = np.zeros_like(s, dtype=np.int32) if zero_point is None else np.asarray(zero_point, dtype=np.int32)
        if s.shape != z.shape or s.ndim > 1:
            raise ValueError("scale and zero_point must be scalars or matching 1-D arrays")
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError("quantization scales must be finite and positive")
        return Quant(s, z, axis)

    def const(self, array, name: str | None = None, scale=None, zero_point=None, axis: int = 0) -> Value:
        a = np.ascontiguousarray(array)
        if a.dtype == np.float64:
            a = a.astype(np.float32)
        elif a.dtype == np.int64:
            a = a.astype(np.int32)
        dt = dtype_of_array(a)
        quant = None
        if scale is not None:
            if dt is not DType.I8:
                raise ValueError("quantization parameters are only for int8 constants")
            quant = self._quant(scale, zero_point, axis if np.ndim(scale) == 1 else -1)
            if quant.per_channel and a.shape[axis] != quant.scale.shape[0]:
                raise ValueError(f"{quant.scale.shape[0]} scales for axis {axis} of size {a.shape[axis]}")
        return self._add(Tensor(self._unique(name, "const"), dt, a.shape or (1,), data=a.reshape(a.shape or (1,)),
                                quant=quant))

    def const_bits(self, pm1, name: str | None = None) -> Value:
        """A +-1 array stored as BIT1: the innermost axis packed 64 to a word."""
        a = np.asarray(pm1)
        if not np.all(np.isin(a, (-1, 1))):
            raise ValueError("const_bits takes an array of +1/-1 values")
        return self._add(Tensor(self._unique(name, "bits"), DType.BIT1, a.shape, data=pack_bits(a)))

    def _act(self, dtype: DType, shape, name: str | None = None, quant: Quant | None = None) -> Value:
        return self._add(Tensor(self._unique(name, "t"), dtype, tuple(int(d) for d in shape), quant=quant))

    def _op(self, type_: OpType, inputs, out_dtype, out_shape, attrs=None, name=None, quant=None) -> Value:
        out = self._act(out_dtype, out_shape, quant=quant)
        idx = [None if v is None else self._value(v).index for v in inputs]
        opname = name or f"{type_.name.lower()}_{len(self.graph.ops)}"
        self.graph.ops.append(Op(type_, idx, [out.index], dict(attrs or {}), opname))
        return out

    def _value(self, v) -> Value:
        if isinstance(v, Value):
            if v.builder is not self:
                raise ValueError("value belongs to another builder")
            return v
        return self.const(np.asarray(v, dtype=np.float32) if np.asarray(v).dtype.kind == "f" else np.asarray(v))

    def _opt_vec(self, v, n: int, what: str, dtype=np.float32):
        if v is None:
            return None
        if isinstance(v, Value):
            if v.shape != (n,):
                raise ValueError(f"{what} must have shape ({n},), got {v.shape}")
            return v
        a = np.asarray(v, dtype=dtype)
        if a.shape != (n,):
            raise ValueError(f"{what} must have shape ({n},), got {a.shape}")
        return self.const(a)

    @staticmethod
    def _expect(v: Value, dtype: DType, ndim: int | None, what: str):
        if v.dtype is not dtype:
            raise ValueError(f"{what} must be {dtype.short}, got {v.dtype.short}")
        if ndim is not None and len(v.shape) != ndim:
            raise ValueError(f"{what} must be {ndim}-D, got shape {v.shape}")

    def _window(self, x: Value, kernel, strides, dilations, padding):
        kh, kw = kernel
        sh, sw = _pair(strides, "strides")
        dh, dw = _pair(dilations, "dilations")
        if min(sh, sw, dh, dw, kh, kw) < 1:
            raise ValueError("kernel, strides and dilations must be >= 1")
        n, h, w, _ = x.shape
        pads = resolve_padding(padding, (h, w), (kh, kw), (sh, sw), (dh, dw))
        oh = conv_output_size(h, kh, sh, dh, pads[0], pads[2])
        ow = conv_output_size(w, kw, sw, dw, pads[1], pads[3])
        if oh < 1 or ow < 1:
            raise ValueError(f"window {kh}x{kw} does not fit input {h}x{w} with padding {pads}")
        attrs = {Attr.STRIDES: (sh, sw), Attr.DILATIONS: (dh, dw), Attr.PADS: pads}
        return (n, oh, ow), attrs

    # ---- int8 layers (TFLite quantization) -------------------------------------------
    def _q8_out(self, x: Value, out_scale, out_zero_point, what: str) -> Quant:
        """Output quantization of an int8 layer; checks the input is a per-tensor int8 activation."""
        q = x.tensor.quant
        if q is None or q.per_channel:
            raise ValueError(f"{what}: an int8 input needs a per-tensor scale and zero point")
        if out_scale is None:
            raise ValueError(f"{what}: an int8 layer needs out_scale (and out_zero_point) for its int8 output")
        oq = self._quant(out_scale, out_zero_point if out_zero_point is not None else 0)
        if oq.per_channel or not -128 <= int(oq.zero_point) <= 127:
            raise ValueError(f"{what}: out_scale/out_zero_point must be one scale and an int8 zero point")
        return oq

    def _q8_weights(self, w: Value, axis: int, what: str):
        q = w.tensor.quant
        if w.tensor.data is None or q is None:
            raise ValueError(f"{what}: int8 weights must be a constant made with const(..., scale=...)")
        # per-tensor weights may be asymmetric (TFLite uint8 models shifted to int8); per-channel ones not
        if q.per_channel and np.any(np.asarray(q.zero_point) != 0):
            raise ValueError(f"{what}: per-channel int8 weights must be symmetric (zero point 0)")
        if q.per_channel and q.axis != axis:
            raise ValueError(f"{what}: per-channel weight scales must run along axis {axis} (output channels)")

    def _q8_bias(self, bias, n: int):
        if bias is None:
            return None
        if isinstance(bias, Value):
            if bias.dtype is not DType.I32 or bias.shape != (n,):
                raise ValueError(f"int8 bias must be i32 of shape ({n},)")
            return bias
        a = np.asarray(bias)
        if a.dtype.kind not in "iu" or a.shape != (n,):
            raise ValueError(f"int8 bias must be integers (units of in_scale * w_scale) of shape ({n},)")
        return self.const(a.astype(np.int32))

    # ---- float convolutions ----------------------------------------------------------
    def conv2d(self, x, w, bias=None, strides=1, dilations=1, padding="valid", groups=1,
               activation=None, name=None, out_scale=None, out_zero_point=None) -> Value:
        """Float conv, or int8 (TFLite semantics) when x and w are int8: then bias is int32,
        and out_scale/out_zero_point quantize the int8 output."""
        x, w = self._value(x), self._value(w)
        if x.dtype is DType.I8:
            self._expect(x, DType.I8, 4, "conv2d input")
            self._expect(w, DType.I8, 4, "conv2d weights [O,kh,kw,C/groups]")
            self._q8_weights(w, 0, "conv2d")
            oc, kh, kw, icg = w.shape
            ic = x.shape[3]
            if groups < 1 or ic % groups or oc % groups or icg * groups != ic:
                raise ValueError(f"conv2d: {ic} input channels, weights for {icg} per group and groups={groups} disagree")
            oq = self._q8_out(x, out_scale, out_zero_point, "conv2d")
            (n, oh, ow), attrs = self._window(x, (kh, kw), strides, dilations, padding)
            attrs[Attr.GROUPS] = (groups,)
            attrs[Attr.ACTIVATION] = (int(Activation.parse(activation)),)
            return self._op(OpType.CONV2D, [x, w, self._q8_bias(bias, oc)], DType.I8, (n, oh, ow, oc), attrs, name,
                            quant=oq)
        self._expect(x, DType.F32, 4, "conv2d input")
        self._expect(w, DType.F32, 4, "conv2d weights [O,kh,kw,C/groups]")
        oc, kh, kw, icg = w.shape
        ic = x.shape[3]
        if groups < 1 or ic % groups or oc % groups or icg * groups != ic:
            raise ValueError(f"conv2d: {ic} input channels, weights for {icg} per group and groups={groups} disagree")
        (n, oh, ow), attrs = self._window(x, (kh, kw), strides, dilations, padding)
        attrs[Attr.GROUPS] = (groups,)
        attrs[Attr.ACTIVATION] = (int(Activation.parse(activation)),)
        return self._op(OpType.CONV2D, [x, w, self._opt_vec(bias, oc, "bias")], DType.F32,
                        (n, oh, ow, oc), attrs, name)

    def depthwise_conv2d(self, x, w, bias=None, strides=1, dilations=1, padding="valid",
                         activation=None, name=None, out_scale=None, out_zero_point=None) -> Value:
        x, w = self._value(x), self._value(w)
        if x.dtype is DType.I8:
            self._expect(w, DType.I8, 3, "depthwise weights [kh,kw,C*multiplier]")
            self._q8_weights(w, 2, "depthwise")
            kh, kw, oc = w.shape
            if oc % x.shape[3]:
                raise ValueError(f"depthwise: {oc} output channels is not a multiple of {x.shape[3]} input channels")
            oq = self._q8_out(x, out_scale, out_zero_point, "depthwise")
            (n, oh, ow), attrs = self._window(x, (kh, kw), strides, dilations, padding)
            attrs[Attr.ACTIVATION] = (int(Activation.parse(activation)),)
            return self._op(OpType.DEPTHWISE_CONV2D, [x, w, self._q8_bias(bias, oc)], DType.I8, (n, oh, ow, oc),
                            attrs, name, quant=oq)
        self._expect(x, DType.F32, 4, "depthwise input")
        self._expect(w, DType.F32, 3, "depthwise weights [kh,kw,C*multiplier]")
        kh, kw, oc = w.shape
        if oc % x.shape[3]:
            raise ValueError(f"depthwise: {oc} output channels is not a multiple of {x.shape[3]} input channels")
        (n, oh, ow), attrs = self._window(x, (kh, kw), strides, dilations, padding)
        attrs[Attr.ACTIVATION] = (int(Activation.parse(activation)),)
        return self._op(OpType.DEPTHWISE_CONV2D, [x, w, self._opt_vec(bias, oc, "bias")], DType.F32,
                        (n, oh, ow, oc), attrs, name)

    def fully_connected(self, x, w, bias=None, activation=None, name=None, out_scale=None,
                        out_zero_point=None) -> Value:
        x, w = self._value(x), self._value(w)
        if x.dtype is DType.I8:
            self._expect(x, DType.I8, 2, "fully_connected input [N,K]")
            self._expect(w, DType.I8, 2, "fully_connected weights [O,K]")
            self._q8_weights(w, 0, "fully_connected")
            if w.shape[1] != x.shape[1]:
                raise ValueError(f"fully_connected: input has {x.shape[1]} features, weights expect {w.shape[1]}")
            oq = self._q8_out(x, out_scale, out_zero_point, "fully_connected")
            attrs = {Attr.ACTIVATION: (int(Activation.parse(activation)),)}
            return self._op(OpType.FULLY_CONNECTED, [x, w, self._q8_bias(bias, w.shape[0])], DType.I8,
                            (x.shape[0], w.shape[0]), attrs, name, quant=oq)
        self._expect(x, DType.F32, 2, "fully_connected input [N,K]")
        self._expect(w, DType.F32, 2, "fully_connected weights [O,K]")
        if w.shape[1] != x.shape[1]:
            raise ValueError(f"fully_connected: input has {x.shape[1]} features, weights expect {w.shape[1]}")
        attrs = {Attr.ACTIVATION: (int(Activation.parse(activation)),)}
        return self._op(OpType.FULLY_CONNECTED, [x, w, self._opt_vec(bias, w.shape[0], "bias")], DType.F32,
                        (x.shape[0], w.shape[0]), attrs, name)

    def hetconv2d(self, x, w3, w1, part, bias=None, strides=1, dilations=1, padding="valid",
                  activation=None, name=None) -> Value:
        x, w3, w1 = self._value(x), self._value(w3), self._value(w1)
        self._expect(x, DType.F32, 4, "hetconv input")
        self._expect(w3, DType.F32, 4, "hetconv w3 [O,kh,kw,C/P]")
        self._expect(w1, DType.F32, 2, "hetconv w1 [O,C-C/P]")
        ic = x.shape[3]
        oc, kh, kw, sub = w3.shape
        if part < 1 or ic % part or sub != ic // part or w1.shape != (oc, ic - ic // part):
            raise ValueError(f"hetconv: part {part} with {ic} channels needs w3 [O,kh,kw,{ic // max(part, 1)}] "
                             f"and w1 [O,{ic - ic // max(part, 1)}]")
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError("hetconv needs an odd kernel size")
        (n, oh, ow), attrs = self._window(x, (kh, kw), strides, dilations, padding)
        attrs[Attr.PART] = (int(part),)
        attrs[Attr.ACTIVATION] = (int(Activation.parse(activation)),)
        return self._op(OpType.HETCONV2D, [x, w3, w1, self._opt_vec(bias, oc, "bias")], DType.F32,
                        (n, oh, ow, oc), attrs, name)

    # ---- binary ----------------------------------------------------------------------
    def _binary_epilogue(self, oc, multiplier, bias, thresholds, directions, activation):
        if thresholds is not None or directions is not None:
            if thresholds is None or directions is None:
                raise ValueError("packed output needs both thresholds and directions")
            if multiplier is not None or bias is not None or activation is not None:
                raise ValueError("packed output takes thresholds/directions, not multiplier/bias/activation")
            d = np.asarray(directions.tensor.data if isinstance(directions, Value) else directions)
            if not np.all(np.isin(d, (-1, 1))):
                raise ValueError("directions must be +1 or -1 per channel")
            return ([None, None, self._opt_vec(thresholds, oc, "thresholds", np.int32),
                     self._opt_vec(directions, oc, "directions", np.int32)], DType.BIT1, Activation.NONE)
        return ([self._opt_vec(multiplier, oc, "multiplier"), self._opt_vec(bias, oc, "bias")],
                DType.F32, Activation.parse(activation))

    def bconv2d(self, x, w, strides=1, dilations=1, padding="valid", pad_value=0, multiplier=None,
                bias=None, thresholds=None, directions=None, activation=None, name=None, groups=1) -> Value:
        """groups > 1: weights [O,kh,kw,C/groups]; filter o reads the C/groups channels of group
        o // (O/groups) (LCE's grouped LceBconv2d)."""
        x, w = self._value(x), self._value(w)
        self._expect(x, DType.BIT1, 4, "bconv2d input")
        self._expect(w, DType.BIT1, 4, "bconv2d weights [O,kh,kw,C/groups]")
        oc, kh, kw, ic = w.shape
        groups = int(groups)
        if groups < 1 or ic * groups != x.shape[3] or oc % groups:
            raise ValueError(f"bconv2d: {groups} group(s) of weights for {ic} channels and {oc} filters do not fit "
                             f"an input of {x.shape[3]} channels")
        if pad_value not in (0, 1):
            raise ValueError("pad_value must be 0 (zero padding) or 1 (one padding)")
        (n, oh, ow), attrs = self._window(x, (kh, kw), strides, dilations, padding)
        extra, out_dt, act = self._binary_epilogue(oc, multiplier, bias, thresholds, directions, activation)
        attrs[Attr.PAD_VALUE] = (int(pad_value),)
        attrs[Attr.ACTIVATION] = (int(act),)
        if groups > 1:   # absent = 1: files without groups read as before
            attrs[Attr.GROUPS] = (groups,)
        return self._op(OpType.BCONV2D, [x, w] + extra, out_dt, (n, oh, ow, oc), attrs, name)

    def bfully_connected(self, x, w, multiplier=None, bias=None, thresholds=None, directions=None,
                         activation=None, name=None) -> Value:
        x, w = self._value(x), self._value(w)
        self._expect(x, DType.BIT1, 2, "bfully_connected input [N,K]")
        self._expect(w, DType.BIT1, 2, "bfully_connected weights [O,K]")
        if w.shape[1] != x.shape[1]:
            raise ValueError(f"bfully_connected: input has {x.shape[1]} features, weights expect {w.shape[1]}")
        extra, out_dt, act = self._binary_epilogue(w.shape[0], multiplier, bias, thresholds, directions, activation)
        return self._op(OpType.BFULLY_CONNECTED, [x, w] + extra, out_dt, (x.shape[0], w.shape[0]),
                        {Attr.ACTIVATION: (int(act),)}, name)

    def _serial_conv(self, type_, x, w, multiplier, bias, strides, dilations, padding, activation, name, attrs2):
        x, w = self._value(x), self._value(w)
        self._expect(x, DType.F32, 4, f"{type_.name.lower()} input")
        self._expect(w, DType.BIT1, 4, f"{type_.name.lower()} weights [O,kh,kw,C]")
        oc, kh, kw, ic = w.shape
        if ic != x.shape[3]:
            raise ValueError(f"{type_.name.lower()}: input has {x.shape[3]} channels, weights expect {ic}")
        (n, oh, ow), attrs = self._window(x, (kh, kw), strides, dilations, padding)
        attrs.update(attrs2)
        attrs[Attr.ACTIVATION] = (int(Activation.parse(activation)),)
        return self._op(type_, [x, w, self._opt_vec(multiplier, oc, "multiplier"), self._opt_vec(bias, oc, "bias")],
                        DType.F32, (n, oh, ow, oc), attrs, name)

    def kbit_conv2d(self, x, w, bits=2, step=1.0, multiplier=None, bias=None, strides=1, dilations=1,
                    padding="valid", activation=None, name=None) -> Value:
        """HWGQ-style conv: unsigned `bits`-bit activations (uniform step) against binary weights."""
        if not 1 <= bits <= 8 or not (step > 0 and math.isfinite(step)):
            raise ValueError("kbit_conv2d needs 1 <= bits <= 8 and a finite step > 0")
        return self._serial_conv(OpType.KBIT_CONV2D, x, w, multiplier, bias, strides, dilations, padding,
                                 activation, name, {Attr.BITS: (int(bits),), Attr.STEP: (float(step),)})

    def horq_conv2d(self, x, w, order=2, multiplier=None, bias=None, strides=1, dilations=1,
                    padding="valid", activation=None, name=None) -> Value:
        """HORQ conv: order-K residual binarization of each input patch against binary weights."""
        if not 1 <= order <= 8:
            raise ValueError("horq_conv2d needs 1 <= order <= 8")
        return self._serial_conv(OpType.HORQ_CONV2D, x, w, multiplier, bias, strides, dilations, padding,
                                 activation, name, {Attr.ORDER: (int(order),)})

    def sign_pack(self, x, thresholds=None, name=None) -> Value:
        x = self._value(x)
        if x.dtype is DType.I8:
            # int8 codes: thresholds are in code units (bit 1 where q < t); none = the zero point
            self._q8_out(x, 1.0, 0, "sign_pack")
        else:
            self._expect(x, DType.F32, None, "sign_pack input")
        return self._op(OpType.SIGN_PACK, [x, self._opt_vec(thresholds, x.shape[-1], "thresholds")],
                        DType.BIT1, x.shape, None, name)

    def unpack(self, x, name=None) -> Value:
        x = self._value(x)
        self._expect(x, DType.BIT1, None, "unpack input")
        return self._op(OpType.UNPACK, [x], DType.F32, x.shape, None, name)

    # ---- pooling --------------------------------------------------------------------
    def _pool(self, type_, x, dtype, kernel, strides, padding, extra, name):
        x = self._value(x)
        quant = None
        if x.dtype is DType.I8 and dtype is DType.F32:
            # int8 pooling keeps the input's scale and zero point
            self._q8_out(x, 1.0, 0, f"{type_.name.lower()}")
            dtype, quant = DType.I8, x.tensor.quant
        self._expect(x, dtype, 4, f"{type_.name.lower()} input")
        k = _pair(kernel, "kernel")
        (n, oh, ow), attrs = self._window(x, k, strides if strides is not None else k, 1, padding)
        del attrs[Attr.DILATIONS]
        attrs[Attr.KERNEL] = k
        attrs.update(extra)
        return self._op(type_, [x], dtype, (n, oh, ow, x.shape[3]), attrs, name, quant=quant)

    def max_pool2d(self, x, kernel=2, strides=None, padding="valid", name=None) -> Value:
        return self._pool(OpType.MAX_POOL2D, x, DType.F32, kernel, strides, padding, {}, name)

    def avg_pool2d(self, x, kernel=2, strides=None, padding="valid", count_include_pad=False, name=None,
                   rounding="away") -> Value:
        """rounding (int8 only): 'away' rounds halves away from zero (TFLite's int8 kernel), 'up' rounds
        them up (TFLite's uint8 kernel, whose codes the importer shifts to int8)."""
        if rounding not in ("away", "up"):
            raise ValueError(f"avg_pool2d rounding {rounding!r}: 'away' or 'up'")
        attrs = {Attr.COUNT_INCLUDE_PAD: (int(bool(count_include_pad)),)}
        if rounding == "up":   # absent = 0: older files keep their meaning
            attrs[Attr.ROUNDING] = (1,)
        return self._pool(OpType.AVG_POOL2D, x, DType.F32, kernel, strides, padding, attrs, name)

    def bmax_pool2d(self, x, kernel=2, strides=None, padding="valid", name=None) -> Value:
        return self._pool(OpType.BMAX_POOL2D, x, DType.BIT1, kernel, strides, padding, {}, name)

    def global_avg_pool(self, x, name=None, out_scale=None, out_zero_point=None) -> Value:
        x = self._value(x)
        if x.dtype is DType.I8:
            self._expect(x, DType.I8, 4, "global_avg_pool input")
            oq = self._q8_out(x, out_scale, out_zero_point, "global_avg_pool")
            return self._op(OpType.GLOBAL_AVG_POOL, [x], DType.I8, (x.shape[0], 1, 1, x.shape[3]), None, name,
                            quant=oq)
        self._expect(x, DType.F32, 4, "global_avg_pool input")
        return self._op(OpType.GLOBAL_AVG_POOL, [x], DType.F32, (x.shape[0], 1, 1, x.shape[3]), None, name)

    # ---- elementwise -----------------------------------------------------------------
    def add(self, a, b, activation=None, name=None, out_scale=None, out_zero_point=None) -> Value:
        a, b = self._value(a), self._value(b)
        if a.dtype is DType.I8:
            self._expect(b, DType.I8, None, "add input")
            self._q8_out(b, 1.0, 0, "add")
            oq = self._q8_out(a, out_scale, out_zero_point, "add")
            if a.shape != b.shape:
                raise ValueError(f"add needs equal shapes, got {a.shape} and {b.shape}")
            return self._op(OpType.ADD, [a, b], DType.I8, a.shape,
                            {Attr.ACTIVATION: (int(Activation.parse(activation)),)}, name, quant=oq)
        self._expect(a, DType.F32, None, "add input")
        self._expect(b, DType.F32, None, "add input")
        if a.shape != b.shape:
            raise ValueError(f"add needs equal shapes, got {a.shape} and {b.shape}")
        return self._op(OpType.ADD, [a, b], DType.F32, a.shape,
                        {Attr.ACTIVATION: (int(Activation.parse(activation)),)}, name)

    def concat(self, values, axis=-1, name=None) -> Value:
        vs = [self._value(v) for v in values]
        if not vs:
            raise ValueError("concat needs at least one input")
        nd = len(vs[0].shape)
        ax = axis + nd if axis < 0 else axis
        if not 0 <= ax < nd:
            raise ValueError(f"concat axis {axis} out of range for {nd}-D inputs")
        dt = vs[0].dtype
        for v in vs:
            if v.dtype is not dt or len(v.shape) != nd or any(
                    v.shape[i] != vs[0].shape[i] for i in range(nd) if i != ax):
                raise ValueError(f"concat inputs disagree: {[(v.dtype.short, v.shape) for v in vs]}")
        if dt is DType.BIT1 and ax != nd - 1:
            raise ValueError("bit1 concat is only along the last (packed) axis")
        shape = list(vs[0].shape)
        shape[ax] = sum(v.shape[ax] for v in vs)
        return self._op(OpType.CONCAT, vs, dt, shape, {Attr.AXIS: (ax,)}, name)

    def _unary(self, type_, x, attrs=None, name=None, extra_inputs=()):
        x = self._value(x)
        self._expect(x, DType.F32, None, f"{type_.name.lower()} input")
        return self._op(type_, [x, *extra_inputs], DType.F32, x.shape, attrs, name)

    def relu(self, x, name=None) -> Value:
        return self._unary(OpType.RELU, x, name=name)

    def relu6(self, x, name=None) -> Value:
        return self._unary(OpType.RELU6, x, name=name)

    def hardtanh(self, x, min_val=-1.0, max_val=1.0, name=None) -> Value:
        if not min_val <= max_val:
            raise ValueError("hardtanh needs min_val <= max_val")
        return self._unary(OpType.HARDTANH, x, {Attr.CLAMP: (float(min_val), float(max_val))}, name)

    def prelu(self, x, slope, name=None) -> Value:
        xv = self._value(x)
        return self._unary(OpType.PRELU, xv, None, name, [self._opt_vec(slope, xv.shape[-1], "slope")])

    def affine(self, x, scale, bias, activation=None, name=None) -> Value:
        xv = self._value(x)
        c = xv.shape[-1]
        return self._unary(OpType.AFFINE, xv, {Attr.ACTIVATION: (int(Activation.parse(activation)),)}, name,
                           [self._opt_vec(scale, c, "scale"), self._opt_vec(bias, c, "bias")])

    def abs(self, x, name=None) -> Value:
        return self._unary(OpType.ABS, x, name=name)

    def channel_mean(self, x, name=None) -> Value:
        """Mean over the last (channel) axis, kept as a dim of 1."""
        x = self._value(x)
        self._expect(x, DType.F32, None, "channel_mean input")
        return self._op(OpType.CHANNEL_MEAN, [x], DType.F32, tuple(x.shape[:-1]) + (1,), None, name)

    def mul(self, a, b, name=None) -> Value:
        """a * b elementwise; b may have last dim 1 (one factor per position, broadcast over channels)."""
        a, b = self._value(a), self._value(b)
        self._expect(a, DType.F32, None, "mul input")
        self._expect(b, DType.F32, None, "mul input")
        if len(a.shape) != len(b.shape) or a.shape[:-1] != b.shape[:-1] or b.shape[-1] not in (1, a.shape[-1]):
            raise ValueError(f"mul needs equal shapes or a second operand with last dim 1, got {a.shape} and {b.shape}")
        return self._op(OpType.MUL, [a, b], DType.F32, a.shape, None, name)

    def softmax(self, x, name=None) -> Value:
        return self._unary(OpType.SOFTMAX, x, name=name)

    # ---- data movement ---------------------------------------------------------------
    def reshape(self, x, shape, name=None) -> Value:
        x = self._value(x)
        shape = [int(d) for d in shape]
        if shape.count(-1) > 1:
            raise ValueError("reshape: at most one -1")
        total = math.prod(x.shape)
        if -1 in shape:
            known = math.prod(d for d in shape if d != -1)
            shape[shape.index(-1)] = total // known if known else 0
        if math.prod(shape) != total:
            raise ValueError(f"reshape: cannot view {x.shape} as {tuple(shape)}")
        return self._op(OpType.RESHAPE, [x], x.dtype, shape, None, name, quant=x.tensor.quant)

    def flatten(self, x, name=None) -> Value:
        v = self._value(x)
        return self.reshape(v, (v.shape[0], -1), name)

    def transpose(self, x, perm, name=None) -> Value:
        x = self._value(x)
        perm = tuple(int(p) for p in perm)
        if sorted(perm) != list(range(len(x.shape))):
            raise ValueError(f"transpose: {perm} is not a permutation of {len(x.shape)} axes")
        if x.dtype is DType.BIT1:
            raise ValueError("transpose of packed bits is not supported: unpack first")
        return self._op(OpType.TRANSPOSE, [x], x.dtype, [x.shape[p] for p in perm], {Attr.PERM: perm}, name,
                        quant=x.tensor.quant)

    def channel_shuffle(self, x, groups, name=None) -> Value:
        x = self._value(x)
        if x.dtype is DType.BIT1 or groups < 1 or x.shape[-1] % groups:
            raise ValueError(f"channel_shuffle: {x.shape[-1]} channels do not split into {groups} groups")
        return self._op(OpType.CHANNEL_SHUFFLE, [x], x.dtype, x.shape, {Attr.GROUPS: (int(groups),)}, name,
                        quant=x.tensor.quant)

    # ---- int8 ------------------------------------------------------------------------
    def quantize(self, x, scale, zero_point=0, name=None) -> Value:
        x = self._value(x)
        self._expect(x, DType.F32, None, "quantize input")
        q = self._quant(scale, zero_point)
        if q.per_channel:
            raise ValueError("quantize takes a per-tensor scale")
        return self._op(OpType.QUANTIZE, [x], DType.I8, x.shape, None, name, quant=q)

    def dequantize(self, x, name=None) -> Value:
        x = self._value(x)
        self._expect(x, DType.I8, None, "dequantize input")
        if x.tensor.quant is None:
            raise ValueError("dequantize input has no quantization parameters")
        return self._op(OpType.DEQUANTIZE, [x], DType.F32, x.shape, None, name)

    # ---- finish ----------------------------------------------------------------------
    def output(self, v, name: str | None = None, layout: str = "NHWC") -> Value:
        v = self._value(v)
        t = v.tensor
        if t.dtype is DType.BIT1:
            raise ValueError("graph outputs cannot be bit1: unpack them first")
        if v.index in self.graph.outputs:
            raise ValueError(f"{t.name!r} is already an output")
        if name:
            self._names.discard(t.name)
            t.name = self._unique(name, "output")
        if layout == "NCHW" and len(t.shape) == 4:
            t.io_layout = "NCHW"
        self.graph.outputs.append(v.index)
        return v

    def build(self, metadata: dict[str, str] | None = None) -> Graph:
        if not self.graph.outputs:
            raise ValueError("the graph has no outputs: call output()")
        g = self.graph.copy()
        g.metadata.update({k: str(v) for k, v in (metadata or {}).items()})
        return g
