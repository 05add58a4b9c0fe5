"""Export a packed graph to ONNX: the float-simulated model, binarization as standard ops.

Every IR op becomes standard ONNX (opset 17) that onnxruntime runs:
- BIT1 tensors are float ±1 tensors of their logical shape; SIGN_PACK is Where(x < t, -1, 1), the
  runtime's rule (bit 1 = -1 where x < threshold, so NaN and sign(0) give +1).
- Binary convs / FC are Conv / MatMul on ±1 values with the packed weights unpacked to ±1: the
  accumulator is integer-valued and exact in float32 (|acc| <= taps < 2^24). Zero padding
  contributes 0 exactly as the runtime's pad_value 0; pad_value 1 is an explicit Pad with +1.
  The packed epilogue (thresholds, directions) is Where(acc·d < thr·d, -1, 1).
- K-bit convs quantize with Div/Add/Floor/Where/Min exactly as the kernel does (float32), then
  convolve the integer codes. HORQ gathers each zero-padded patch with a one-hot Conv and runs the
  residual binarization per patch; its mean |r| is a ReduceSum whose order differs from the
  kernel's sequential sum, so it matches within float rounding, not bit for bit.
- int8 tensors stay int8. QUANTIZE and DEQUANTIZE are exact (round half away from zero, like the
  runtime). int8 conv/FC/add/pool layers are float-simulated: dequantize, the float op with
  dequantized weights and bias, requantize; TFLite's fixed-point requantization can differ from
  that by one unit.
The runtime computes NHWC; the ONNX model keeps NHWC inside, wraps each conv and pool in
Transposes, and takes/gives each graph input/output in the layout the .ebnn declares (io_layout).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebnn.format.writer import atomic_write
from edgebnn.errors import UserError
from edgebnn.ir import Activation, Attr, DType, Graph, Op, OpType, unpack_bits

OPSET = 17
_TO_NCHW = (0, 3, 1, 2)
_TO_NHWC = (0, 2, 3, 1)


class _Unsupported(Exception):
    pass


def _attr(op: Op, key: Attr, default):
    v = op.attrs.get(key)
    return tuple(v) if v is not None else default


def _scalar(a) -> float:
    return float(np.asarray(a).reshape(-1)[0])


class _Emitter:
    """Collects nodes and initializers; maps IR tensors to the ONNX value holding them."""

    def __init__(self, graph: Graph):
        import onnx
        self.onnx = onnx
        self.g = graph
        self.nodes, self.inits = [], []
        self.values: dict[int, str] = {}
        self.used: set[str] = set()
        self.op_name = ""

    def fresh(self, hint: str) -> str:
        base = hint or "v"
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name

    def const(self, array, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def f32(self, value, hint="c") -> str:
        return self.const(np.asarray(value, dtype=np.float32), hint)

    def node(self, op_type: str, inputs, hint: str = "", **attrs) -> str:
        out = self.fresh(f"{self.op_name}/{hint or op_type}")
        self.nodes.append(self.onnx.helper.make_node(op_type, [i or "" for i in inputs], [out],
                                                     name=out, **attrs))
        return out

    # ---- IR tensors --------------------------------------------------------------
    def tensor(self, idx):
        return self.g.tensors[idx]

    def value(self, idx: int) -> str:
        """The ONNX value of IR tensor idx: f32 as float, bit1 as ±1 float, i8 as int8."""
        if idx in self.values:
            return self.values[idx]
        t = self.tensor(idx)
        if not t.is_const:
            raise _Unsupported(f"tensor {t.name!r} is read before it is written")
        self.values[idx] = self.const(self.const_array(idx), t.name)
        return self.values[idx]

    def const_array(self, idx: int) -> np.ndarray:
        t = self.tensor(idx)
        if t.dtype is DType.BIT1:
            return unpack_bits(t.data, t.shape[-1]).reshape(t.shape)
        return np.asarray(t.data).reshape(t.shape)

    def real_weights(self, idx: int) -> np.ndarray:
        """A constant weight as float32 real values (int8 ones dequantized along their axis)."""
        t = self.tensor(idx)
        a = self.const_array(idx)
        if t.dtype is not DType.I8:
            return a.astype(np.float32)
        q = t.quant
        s, z = np.asarray(q.scale, np.float32), np.asarray(q.zero_point, np.int64)
        if q.per_channel:
            shape = [1] * a.ndim
            shape[q.axis] = -1
            s, z = s.reshape(shape), z.reshape(shape)
        return ((a.astype(np.int64) - z).astype(np.float32) * s).astype(np.float32)

    # ---- helpers ------------------------------------------------------------------
    def transpose(self, x: str, perm) -> str:
        return self.node("Transpose", [x], "transpose", perm=list(perm))

    def activation(self, x: str, code: int) -> str:
        act = Activation(int(code))
        if act is Activation.RELU:
            return self.node("Relu", [x])
        if act is Activation.RELU6:
            return self.node("Clip", [x, self.f32(0.0), self.f32(6.0)], "relu6")
        return x

    def affine(self, x: str, mult, bias) -> str:
        if mult is not None:
            x = self.node("Mul", [x, self.f32(mult, "multiplier")])
        if bias is not None:
            x = self.node("Add", [x, self.f32(bias, "bias")])
        return x

    def dequantize(self, x: str, idx: int) -> str:
        q = self.tensor(idx).quant
        if q is None:
            raise _Unsupported(f"int8 tensor {self.tensor(idx).name!r} has no quantization parameters")
        if q.per_channel:
            return self.node("DequantizeLinear", [x, self.f32(q.scale, "scale"),
                                                  self.const(np.asarray(q.zero_point, np.int8), "zero_point")],
                             axis=int(q.axis) % len(self.tensor(idx).shape))
        return self.node("DequantizeLinear", [x, self.f32(_scalar(q.scale), "scale"),
                                              self.const(np.int8(_scalar(q.zero_point)), "zero_point")])

    def quantize(self, x: str, idx: int) -> str:
        """The runtime's QUANTIZE: clamp(roundf(x / scale) + zp, -128, 127), half away from zero,
        NaN -> zp. |v| - floor|v| is exact in float32, so the tie test is exact."""
        q = self.tensor(idx).quant
        if q is None or q.per_channel:
            raise _Unsupported(f"int8 output {self.tensor(idx).name!r} needs one per-tensor scale")
        v = self.node("Div", [x, self.f32(_scalar(q.scale), "scale")])
        a = self.node("Abs", [v])
        f = self.node("Floor", [a])
        up = self.node("GreaterOrEqual", [self.node("Sub", [a, f]), self.f32(0.5)])
        r = self.node("Where", [up, self.node("Add", [f, self.f32(1.0)]), f], "round")
        r = self.node("Where", [self.node("Less", [v, self.f32(0.0)]), self.node("Neg", [r]), r])
        r = self.node("Where", [self.node("IsNaN", [v]), self.f32(0.0), r], "nan_to_zero")
        r = self.node("Add", [r, self.f32(_scalar(q.zero_point), "zero_point")])
        r = self.node("Clip", [r, self.f32(-128.0), self.f32(127.0)])
        return self.node("Cast", [r], "int8", to=self.onnx.TensorProto.INT8)


def _opt(op: Op, k: int):
    return op.inputs[k] if k < len(op.inputs) else None


# ---- convolutions --------------------------------------------------------------------

def _geom(op: Op):
    return (list(_attr(op, Attr.STRIDES, (1, 1))), list(_attr(op, Attr.DILATIONS, (1, 1))),
            list(_attr(op, Attr.PADS, (0, 0, 0, 0))))


def _conv_nhwc(em: _Emitter, x: str, w_oihw: np.ndarray, bias, op: Op, group: int = 1, pads=None) -> str:
    """An NHWC value through an ONNX (NCHW) Conv and back to NHWC."""
    strides, dil, p = _geom(op)
    p = p if pads is None else pads
    inputs = [em.transpose(x, _TO_NCHW), em.f32(w_oihw, "weight")]
    if bias is not None:
        inputs.append(em.f32(bias, "bias"))
    y = em.node("Conv", inputs, "conv", strides=strides, dilations=dil, pads=list(p), group=int(group),
                kernel_shape=list(w_oihw.shape[2:]))
    return em.transpose(y, _TO_NHWC)


def _float_bias(em: _Emitter, op: Op, k: int, x_idx: int, w_idx: int):
    """A conv bias as float: as stored, or an int8 layer's i32 bias times x_scale · w_scale[o]."""
    b = _opt(op, k)
    if b is None:
        return None
    data = em.const_array(b)
    if em.tensor(b).dtype is not DType.I32:
        return data.astype(np.float32)
    xs = np.float64(_scalar(em.tensor(x_idx).quant.scale))
    ws = np.asarray(em.tensor(w_idx).quant.scale, np.float64)
    return (data.astype(np.float64) * xs * ws).astype(np.float32)


def _int8_wrap(em: _Emitter, op: Op, body):
    """An int8 layer, float-simulated: dequantize inputs, the float op, requantize the output."""
    xs = [em.dequantize(em.value(i), i) for i in op.inputs if i is not None and not em.tensor(i).is_const]
    y = body(xs)
    return em.quantize(y, op.outputs[0])


def _conv2d(em: _Emitter, op: Op) -> str:
    x, w = op.inputs[0], op.inputs[1]
    wr = em.real_weights(w).transpose(_TO_NCHW)
    bias = _float_bias(em, op, 2, x, w)
    groups = _attr(op, Attr.GROUPS, (1,))[0]
    act = _attr(op, Attr.ACTIVATION, (0,))[0]
    body = lambda xs: em.activation(_conv_nhwc(em, xs[0], wr, bias, op, groups), act)  # noqa: E731
    if em.tensor(x).dtype is DType.I8:
        return _int8_wrap(em, op, body)
    return body([em.value(x)])


def _depthwise(em: _Emitter, op: Op) -> str:
    x, w = op.inputs[0], op.inputs[1]
    # [kh, kw, C·m] -> [C·m, 1, kh, kw]: with group = C, output o reads input o // m, as the runtime
    wr = em.real_weights(w).transpose(2, 0, 1)[:, None]
    bias = _float_bias(em, op, 2, x, w)
    act = _attr(op, Attr.ACTIVATION, (0,))[0]
    c = em.tensor(x).shape[3]
    body = lambda xs: em.activation(_conv_nhwc(em, xs[0], wr, bias, op, c), act)  # noqa: E731
    if em.tensor(x).dtype is DType.I8:
        return _int8_wrap(em, op, body)
    return body([em.value(x)])


def _fully_connected(em: _Emitter, op: Op) -> str:
    x, w = op.inputs[0], op.inputs[1]
    wr = em.real_weights(w)
    bias = _float_bias(em, op, 2, x, w)
    act = _attr(op, Attr.ACTIVATION, (0,))[0]

    def body(xs):
        inputs = [xs[0], em.f32(wr, "weight")] + ([em.f32(bias, "bias")] if bias is not None else [])
        return em.activation(em.node("Gemm", inputs, "gemm", transB=1), act)
    if em.tensor(x).dtype is DType.I8:
        return _int8_wrap(em, op, body)
    return body([em.value(x)])


def _hetconv(em: _Emitter, op: Op) -> str:
    """HetConv as the dense conv it equals: each filter's 3x3 taps on its own channels, its 1x1
    weights at the window centre of the others, zeros elsewhere."""
    x, w3i, w1i = op.inputs[0], op.inputs[1], op.inputs[2]
    w3, w1 = em.real_weights(w3i), em.real_weights(w1i)
    p = _attr(op, Attr.PART, (1,))[0]
    oc, kh, kw, _ = w3.shape
    ic = em.tensor(x).shape[3]
    dense = np.zeros((oc, kh, kw, ic), np.float32)
    for j in range(oc):
        ch3 = np.arange(j % p, ic, p)
        ch1 = np.array([c for c in range(ic) if c % p != j % p], dtype=np.intp)
        dense[j][:, :, ch3] = w3[j]
        if ch1.size:
            dense[j, kh // 2, kw // 2, ch1] = w1[j]
    bias = _float_bias(em, op, 3, x, w3i)
    act = _attr(op, Attr.ACTIVATION, (0,))[0]
    return em.activation(_conv_nhwc(em, em.value(x), dense.transpose(_TO_NCHW), bias, op), act)


# ---- binary --------------------------------------------------------------------------

def _binary_epilogue(em: _Emitter, op: Op, acc: str, taps: int) -> str:
    """acc (integer-valued float, NHWC / [N, O]) -> the op's float or ±1 output."""
    out = em.tensor(op.outputs[0])
    if out.dtype is DType.BIT1:
        thr_i, dir_i = _opt(op, 4), _opt(op, 5)
        if thr_i is None or dir_i is None:
            raise _Unsupported("a packed output needs thresholds and directions")
        d = np.where(em.const_array(dir_i).astype(np.int64) < 0, -1, 1)
        # |acc| <= taps: clipping keeps every comparison and makes thr·d exact in float32
        t = np.clip(em.const_array(thr_i).astype(np.int64), -taps - 1, taps + 1)
        neg = em.node("Less", [em.node("Mul", [acc, em.f32(d, "direction")]), em.f32(t * d, "threshold")])
        return em.node("Where", [neg, em.f32(-1.0), em.f32(1.0)], "bits")
    mult = em.const_array(_opt(op, 2)) if _opt(op, 2) is not None else None
    bias = em.const_array(_opt(op, 3)) if _opt(op, 3) is not None else None
    return em.activation(em.affine(acc, mult, bias), _attr(op, Attr.ACTIVATION, (0,))[0])


def _bconv2d(em: _Emitter, op: Op) -> str:
    x, w = op.inputs[0], op.inputs[1]
    wpm = em.const_array(w).astype(np.float32)      # [O, kh, kw, C/groups] ±1
    _, kh, kw, ic = wpm.shape
    strides, dil, pads = _geom(op)
    pad_value = _attr(op, Attr.PAD_VALUE, (0,))[0]
    xv = em.value(x)
    if pad_value and any(pads):
        # one padding: padding taps read +1; zero padding (Conv's own) contributes 0 like the runtime
        t, l, b, r = pads
        xv = em.node("Pad", [xv, em.const(np.array([0, t, l, 0, 0, b, r, 0], np.int64), "pads"),
                             em.f32(1.0, "one")], "pad_one")
        pads = [0, 0, 0, 0]
    acc = _conv_nhwc(em, xv, wpm.transpose(_TO_NCHW), None, op, group=_attr(op, Attr.GROUPS, (1,))[0], pads=pads)
    return _binary_epilogue(em, op, acc, kh * kw * ic)


def _bfully_connected(em: _Emitter, op: Op) -> str:
    x, w = op.inputs[0], op.inputs[1]
    wpm = em.const_array(w).astype(np.float32)      # [O, K] ±1
    acc = em.node("MatMul", [em.value(x), em.f32(wpm.T, "weight_t")], "acc")
    return _binary_epilogue(em, op, acc, wpm.shape[1])


def _kbit_conv2d(em: _Emitter, op: Op) -> str:
    x, w = op.inputs[0], op.inputs[1]
    bits = _attr(op, Attr.BITS, (2,))[0]
    step = _attr(op, Attr.STEP, (1.0,))[0]
    # the kernel's codes, in float32: q = floor(x / step + 0.5); !(q > 0) -> 0 (NaN too); min(q, 2^bits - 1)
    q = em.node("Floor", [em.node("Add", [em.node("Div", [em.value(x), em.f32(step, "step")]), em.f32(0.5)])])
    q = em.node("Where", [em.node("Greater", [q, em.f32(0.0)]), q, em.f32(0.0)])
    q = em.node("Min", [q, em.f32(float(2 ** int(bits) - 1), "qmax")], "codes")
    wpm = em.const_array(w).astype(np.float32)
    acc = _conv_nhwc(em, q, wpm.transpose(_TO_NCHW), None, op)   # padding taps are code 0
    return _binary_epilogue(em, op, acc, 0)


def _horq_conv2d(em: _Emitter, op: Op) -> str:
    """Order-K residual binarization of each zero-padded patch (tap order ky, kx, c)."""
    x, w = op.inputs[0], op.inputs[1]
    order = _attr(op, Attr.ORDER, (2,))[0]
    wpm = em.const_array(w).astype(np.float32)      # [O, kh, kw, C]
    oc, kh, kw, ic = wpm.shape
    plen = kh * kw * ic
    strides, dil, pads = _geom(op)
    # one-hot Conv = im2col: output channel (ky·kw + kx)·C + c copies tap (ky, kx) of channel c
    gather = np.zeros((plen, ic, kh, kw), np.float32)
    for ky in range(kh):
        for kx in range(kw):
            for c in range(ic):
                gather[(ky * kw + kx) * ic + c, c, ky, kx] = 1.0
    r = em.node("Conv", [em.transpose(em.value(x), _TO_NCHW), em.f32(gather, "im2col")], "patches",
                strides=strides, dilations=dil, pads=pads, kernel_shape=[kh, kw])
    w1x1 = em.f32(wpm.reshape(oc, plen, 1, 1), "weight")
    total = None
    for i in range(int(order)):
        h = em.node("Where", [em.node("Less", [r, em.f32(0.0)]), em.f32(-1.0), em.f32(1.0)], f"h{i}")
        s = em.node("ReduceSum", [em.node("Abs", [r]), em.const(np.array([1], np.int64), "axis")],
                    f"sum_abs{i}", keepdims=1)
        beta = em.node("Div", [s, em.f32(float(plen), "plen")], f"beta{i}")
        r = em.node("Sub", [r, em.node("Mul", [beta, h])], f"residual{i}")
        acc = em.node("Conv", [h, w1x1], f"acc{i}", kernel_shape=[1, 1])
        term = em.node("Mul", [beta, acc])
        total = term if total is None else em.node("Add", [total, term])
    y = em.transpose(total, _TO_NHWC)
    mult = em.const_array(_opt(op, 2)) if _opt(op, 2) is not None else None
    bias = em.const_array(_opt(op, 3)) if _opt(op, 3) is not None else None
    return em.activation(em.affine(y, mult, bias), _attr(op, Attr.ACTIVATION, (0,))[0])


def _sign_pack(em: _Emitter, op: Op) -> str:
    t = _opt(op, 1)
    thr = em.f32(em.const_array(t), "thresholds") if t is not None else em.f32(0.0)
    neg = em.node("Less", [em.value(op.inputs[0]), thr])
    return em.node("Where", [neg, em.f32(-1.0), em.f32(1.0)], "sign")


# ---- pooling ---------------------------------------------------------------------------

def _pool(em: _Emitter, op: Op, x: str, kind: str) -> str:
    """MaxPool / AveragePool on an NHWC value. The loader rejects padding as wide as the window,
    so every window has a tap inside and ONNX's padding rules (max skips it, the average divides
    by the taps inside unless count_include_pad) are the runtime's."""
    k = list(_attr(op, Attr.KERNEL, (2, 2)))
    extra = {"count_include_pad": int(_attr(op, Attr.COUNT_INCLUDE_PAD, (0,))[0])} if kind == "AveragePool" else {}
    y = em.node(kind, [em.transpose(x, _TO_NCHW)], "pool", kernel_shape=k,
                strides=list(_attr(op, Attr.STRIDES, tuple(k))), pads=list(_attr(op, Attr.PADS, (0, 0, 0, 0))),
                **extra)
    return em.transpose(y, _TO_NHWC)


def _max_pool(em: _Emitter, op: Op) -> str:
    x = op.inputs[0]
    if em.tensor(x).dtype is DType.I8:
        return _int8_wrap(em, op, lambda xs: _pool(em, op, xs[0], "MaxPool"))
    return _pool(em, op, em.value(x), "MaxPool")


def _avg_pool(em: _Emitter, op: Op) -> str:
    x = op.inputs[0]
    if em.tensor(x).dtype is DType.I8:
        return _int8_wrap(em, op, lambda xs: _pool(em, op, xs[0], "AveragePool"))
    return _pool(em, op, em.value(x), "AveragePool")


def _bmax_pool(em: _Emitter, op: Op) -> str:
    return _pool(em, op, em.value(op.inputs[0]), "MaxPool")   # AND of bits = max of ±1


def _global_avg_pool(em: _Emitter, op: Op) -> str:
    body = lambda xs: em.node("ReduceMean", [xs[0]], "mean", axes=[1, 2], keepdims=1)  # noqa: E731
    if em.tensor(op.inputs[0]).dtype is DType.I8:
        return _int8_wrap(em, op, body)
    return body([em.value(op.inputs[0])])


# ---- elementwise and data movement -------------------------------------------------------

def _add(em: _Emitter, op: Op) -> str:
    act = _attr(op, Attr.ACTIVATION, (0,))[0]
    body = lambda xs: em.activation(em.node("Add", xs), act)  # noqa: E731
    if em.tensor(op.inputs[0]).dtype is DType.I8:
        if any(em.tensor(i).is_const for i in op.inputs):
            raise _Unsupported("an int8 ADD of a constant is not exported")
        return _int8_wrap(em, op, body)
    return body([em.value(i) for i in op.inputs])


def _unary(onnx_op: str):
    return lambda em, op: em.node(onnx_op, [em.value(op.inputs[0])])


def _relu6(em: _Emitter, op: Op) -> str:
    return em.activation(em.value(op.inputs[0]), Activation.RELU6)


def _hardtanh(em: _Emitter, op: Op) -> str:
    lo, hi = _attr(op, Attr.CLAMP, (-1.0, 1.0))
    return em.node("Clip", [em.value(op.inputs[0]), em.f32(lo, "min"), em.f32(hi, "max")], "hardtanh")


def _prelu(em: _Emitter, op: Op) -> str:
    return em.node("PRelu", [em.value(op.inputs[0]), em.value(op.inputs[1])])


def _affine(em: _Emitter, op: Op) -> str:
    s = em.const_array(_opt(op, 1)) if _opt(op, 1) is not None else None
    b = em.const_array(_opt(op, 2)) if _opt(op, 2) is not None else None
    return em.activation(em.affine(em.value(op.inputs[0]), s, b), _attr(op, Attr.ACTIVATION, (0,))[0])


def _channel_mean(em: _Emitter, op: Op) -> str:
    return em.node("ReduceMean", [em.value(op.inputs[0])], "mean", axes=[-1], keepdims=1)


def _mul(em: _Emitter, op: Op) -> str:
    return em.node("Mul", [em.value(op.inputs[0]), em.value(op.inputs[1])])


def _softmax(em: _Emitter, op: Op) -> str:
    return em.node("Softmax", [em.value(op.inputs[0])], axis=-1)


def _reshape(em: _Emitter, op: Op) -> str:
    shape = np.array(em.tensor(op.outputs[0]).shape, np.int64)
    return em.node("Reshape", [em.value(op.inputs[0]), em.const(shape, "shape")])


def _transpose(em: _Emitter, op: Op) -> str:
    return em.transpose(em.value(op.inputs[0]), _attr(op, Attr.PERM, ()))


def _concat(em: _Emitter, op: Op) -> str:
    axis = _attr(op, Attr.AXIS, (-1,))[0]
    return em.node("Concat", [em.value(i) for i in op.inputs if i is not None], axis=int(axis))


def _channel_shuffle(em: _Emitter, op: Op) -> str:
    shape = list(em.tensor(op.inputs[0]).shape)
    g = _attr(op, Attr.GROUPS, (1,))[0]
    nd = len(shape)
    y = em.node("Reshape", [em.value(op.inputs[0]),
                            em.const(np.array(shape[:-1] + [g, shape[-1] // g], np.int64), "shape")])
    perm = list(range(nd - 1)) + [nd, nd - 1]
    y = em.transpose(y, perm)
    return em.node("Reshape", [y, em.const(np.array(shape, np.int64), "shape")])


def _quantize(em: _Emitter, op: Op) -> str:
    return em.quantize(em.value(op.inputs[0]), op.outputs[0])


def _dequantize(em: _Emitter, op: Op) -> str:
    return em.dequantize(em.value(op.inputs[0]), op.inputs[0])


_LOWER = {
    OpType.CONV2D: _conv2d, OpType.DEPTHWISE_CONV2D: _depthwise, OpType.FULLY_CONNECTED: _fully_connected,
    OpType.HETCONV2D: _hetconv, OpType.BCONV2D: _bconv2d, OpType.BFULLY_CONNECTED: _bfully_connected,
    OpType.KBIT_CONV2D: _kbit_conv2d, OpType.HORQ_CONV2D: _horq_conv2d, OpType.SIGN_PACK: _sign_pack,
    OpType.UNPACK: _unary("Identity"), OpType.MAX_POOL2D: _max_pool, OpType.AVG_POOL2D: _avg_pool,
    OpType.BMAX_POOL2D: _bmax_pool, OpType.GLOBAL_AVG_POOL: _global_avg_pool, OpType.ADD: _add,
    OpType.CONCAT: _concat, OpType.RELU: _unary("Relu"), OpType.RELU6: _relu6, OpType.PRELU: _prelu,
    OpType.HARDTANH: _hardtanh, OpType.AFFINE: _affine, OpType.RESHAPE: _reshape, OpType.TRANSPOSE: _transpose,
    OpType.CHANNEL_SHUFFLE: _channel_shuffle, OpType.SOFTMAX: _softmax, OpType.QUANTIZE: _quantize,
    OpType.DEQUANTIZE: _dequantize, OpType.ABS: _unary("Abs"), OpType.CHANNEL_MEAN: _channel_mean,
    OpType.MUL: _mul,
}

_ELEM = {DType.F32: "FLOAT", DType.BIT1: "FLOAT", DType.I8: "INT8", DType.I32: "INT32", DType.U8: "UINT8"}


def _user_shape(t) -> list[int]:
    if t.io_layout == "NCHW" and len(t.shape) == 4:
        return [t.shape[i] for i in _TO_NCHW]
    return list(t.shape)


def to_model(graph: Graph):
    """The ONNX ModelProto of `graph` (raises UserError naming the layer it cannot express)."""
    try:
        import onnx
    except ImportError:
        raise UserError("exporting to ONNX needs the onnx package: pip install onnx") from None
    from onnx import TensorProto, helper

    em = _Emitter(graph)
    io_names = [graph.tensors[i].name for i in graph.inputs + graph.outputs]
    if len(set(io_names)) != len(io_names):
        raise UserError(f"graph inputs and outputs need distinct names to export, got {io_names}")
    em.used.update(io_names)
    inputs = []
    for i in graph.inputs:
        t = graph.tensors[i]
        inputs.append(helper.make_tensor_value_info(t.name, getattr(TensorProto, _ELEM[t.dtype]), _user_shape(t)))
        em.op_name = t.name
        em.values[i] = em.transpose(t.name, _TO_NHWC) if t.io_layout == "NCHW" and len(t.shape) == 4 else t.name
    for op in graph.ops:
        fn = _LOWER.get(op.type)
        if fn is None:
            raise UserError(f"layer {op.name!r}: op {op.type.name} cannot be exported to ONNX")
        em.op_name = op.name or op.type.name.lower()
        try:
            em.values[op.outputs[0]] = fn(em, op)
        except _Unsupported as e:
            raise UserError(f"layer {op.name!r} ({op.type.name}) cannot be exported to ONNX: {e}") from None
    outputs = []
    for i in graph.outputs:
        t = graph.tensors[i]
        v = em.values[i]
        if t.io_layout == "NCHW" and len(t.shape) == 4:
            v = em.transpose(v, _TO_NCHW)
        em.nodes.append(helper.make_node("Identity", [v], [t.name], name=f"{t.name}/output"))
        outputs.append(helper.make_tensor_value_info(t.name, getattr(TensorProto, _ELEM[t.dtype]), _user_shape(t)))
    g = helper.make_graph(em.nodes, "edgebnn", inputs, outputs, em.inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgebnn export")
    model.ir_version = min(model.ir_version, 8)   # loadable by onnxruntime >= 1.14
    helper.set_model_props(model, {k: v for k, v in graph.metadata.items()})
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise UserError(f"the exported ONNX model does not validate: {str(e).splitlines()[0]}") from None
    return model


def export_onnx(graph: Graph, path) -> Path:
    """Write `graph` as an ONNX model at `path`, atomically (no partial file on any error)."""
    model = to_model(graph)
    return atomic_write(path, model.SerializeToString())
