"""Lower a parsed TFLite subgraph straight into the packed IR (GraphBuilder, NHWC).

TFLite is NHWC with [O,kh,kw,I] conv weights already, which is the IR's own layout, and its
int8 tensors carry per-tensor / per-channel quantization that the working graph (passes/graph.py,
NCHW float) has no place for. So this front-end skips the working graph and emits directly:
no layout round trip, and the int8 layers keep TFLite's exact arithmetic (the runtime's int8
ops are TFLite's reference kernels).

uint8 asymmetric models are shifted to int8 (q - 128, zero points - 128): exact, since every
uint8 kernel only ever uses q - zero_point. Their per-tensor weights keep a zero point, which
the runtime's int8 conv/FC subtract like TFLite's filter_offset.

The model's input is float (NHWC at the boundary) with a QUANTIZE when the model is quantized,
so `edgebnn run photo.bmp` feeds it through `input.preprocess`; int8 outputs are dequantized,
bitpacked LCE outputs unpacked to ±1 floats.
SOFTMAX runs in float on the dequantized logits (the runtime has no int8 softmax).
"""
from __future__ import annotations

import numpy as np

from edgebnn.errors import UserError
from edgebnn.ir.builder import GraphBuilder, Value, resolve_padding
from edgebnn.ir.dtypes import DType
from edgebnn.ir.ops import Activation, Attr, OpType
from edgebnn.passes.graph import WGraph

from .lce_ops import NAMES as LCE_OPS
from .lce_ops import LceOps, reshape_bits
from .schema import TModel, TOp, TTensor

# fused_activation_function codes (schema.fbs ActivationFunctionType)
_ACT = {0: None, 1: "relu", 3: "relu6"}
_ACT_NAMES = {2: "RELU_N1_TO_1", 4: "TANH", 5: "SIGN_BIT"}
_PAD = {0: "same", 1: "valid"}

SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN",
             "RESHAPE", "SQUEEZE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "RELU", "RELU6", "CONCATENATION", "MUL",
             "PAD", "PADV2") + LCE_OPS


class _Lowering:
    def __init__(self, model: TModel, path, outputs=None):
        self.m, self.path = model, path
        self.outputs = list(model.outputs if outputs is None else outputs)
        self.b = GraphBuilder()
        self.vals: dict[int, Value] = {}
        # LceDequantize outputs, emitted only when something reads them as floats: a FULLY_CONNECTED
        # with ±1 rows (larq's QuantDense) takes the bits themselves (bits_of) instead
        self.lazy: dict[int, object] = {}
        self.bits_of: dict[int, Value] = {}
        self.layer_of_op: dict[str, int] = {}
        # PAD / PADV2 outputs -> (input index, (top, left, bottom, right), "zero" | "lowest", the PAD op):
        # folded into the window op that reads them (see _pad)
        self.padded: dict[int, tuple] = {}
        self.wg = WGraph()   # one node per TFLite op: the report's "source" column

    # -- tensors ---------------------------------------------------------------------
    def t(self, i: int) -> TTensor:
        return self.m.tensors[i]

    def where(self, op: TOp) -> str:
        return f"{op.name} (operator {op.index}, output '{self.t(op.outputs[0]).name}')"

    def fail(self, op: TOp, why: str):
        raise UserError(f"{self.path}: {self.where(op)}: {why}")

    def qparams(self, t: TTensor, op: TOp) -> tuple[float, int]:
        """Per-tensor (scale, int8 zero point) of an activation, uint8 shifted to int8."""
        if t.scale.size != 1:
            self.fail(op, f"tensor '{t.name}' needs one scale (has {t.scale.size})")
        zp = int(t.zero_point[0]) - (128 if t.type == 3 else 0)
        if not -128 <= zp <= 127:
            self.fail(op, f"tensor '{t.name}' has zero point {int(t.zero_point[0])} outside the 8-bit range")
        return float(t.scale[0]), zp

    def is_q(self, i: int) -> bool:
        return self.t(i).type in (3, 9)

    def act(self, i: int, op: TOp) -> Value:
        if i not in self.vals and i in self.lazy:
            self.vals[i] = self.lazy.pop(i)()
        if i not in self.vals:
            t = self.t(i)
            if t.data is None:
                self.fail(op, f"input tensor '{t.name}' is neither a model input nor computed before")
            self.fail(op, f"constant tensor '{t.name}' as an activation input is not supported")
        return self.vals[i]

    def weights(self, i: int, op: TOp, axis: int, reshape=None) -> Value:
        t = self.t(i)
        if t.data is None:
            self.fail(op, f"weights '{t.name}' are not constant (only constant weights are supported)")
        w = t.data if reshape is None else t.data.reshape(reshape)
        if t.type == 0:
            return self.b.const(w.astype(np.float32), name=t.name)
        if t.type == 1:
            return self.b.const(w.astype(np.float32), name=t.name)
        if t.type not in (3, 9) or t.scale.size == 0:
            self.fail(op, f"weights '{t.name}' are {t.type_name}; supported: float32, int8 and uint8 quantized")
        if t.type == 3:  # uint8 asymmetric -> int8 with the zero point shifted by the same 128
            return self.b.const((w.astype(np.int16) - 128).astype(np.int8), name=t.name,
                                scale=float(t.scale[0]) if t.scale.size == 1 else t.scale,
                                zero_point=int(t.zero_point[0]) - 128 if t.scale.size == 1 else t.zero_point - 128,
                                axis=axis)
        if t.scale.size == 1:
            return self.b.const(w, name=t.name, scale=float(t.scale[0]), zero_point=int(t.zero_point[0]))
        return self.b.const(w, name=t.name, scale=t.scale, zero_point=t.zero_point.astype(np.int32), axis=axis)

    def bias(self, op: TOp, k: int, quantized: bool):
        if len(op.inputs) <= k or op.inputs[k] < 0:
            return None
        t = self.t(op.inputs[k])
        if t.data is None:
            self.fail(op, f"bias '{t.name}' is not constant")
        if quantized:
            if t.type != 2:
                self.fail(op, f"bias '{t.name}' is {t.type_name}; quantized layers need an int32 bias")
            return t.data.astype(np.int32).reshape(-1)
        return t.data.astype(np.float32).reshape(-1)

    def out_q(self, op: TOp) -> dict:
        s, z = self.qparams(self.t(op.outputs[0]), op)
        return {"out_scale": s, "out_zero_point": z}

    def activation(self, op: TOp, code: int):
        if code in _ACT:
            return _ACT[code]
        self.fail(op, f"fused activation {_ACT_NAMES.get(code, code)} is not supported (NONE, RELU, RELU6 are)")

    def check_types(self, op: TOp, x: int):
        """Quantized in -> quantized out (same 8-bit family), float in -> float out."""
        xo, yo = self.t(x), self.t(op.outputs[0])
        if xo.type not in (0, 3, 9):
            self.fail(op, f"input '{xo.name}' is {xo.type_name}; supported: float32, uint8, int8")
        if (xo.type == 0) != (yo.type == 0):
            self.fail(op, f"mixes {xo.type_name} input and {yo.type_name} output")

    # -- ops -----------------------------------------------------------------------------
    def _conv(self, op: TOp, depthwise: bool) -> Value:
        o = op.options
        x_i = op.inputs[0]
        self.check_types(op, x_i)
        q = self.is_q(x_i)
        pad = _PAD.get(o.scalar(0, "b"))
        strides = (o.scalar(2, "i"), o.scalar(1, "i"))
        wt = self.t(op.inputs[1])
        dil = (o.scalar(6, "i", 1), o.scalar(5, "i", 1)) if depthwise else (o.scalar(5, "i", 1), o.scalar(4, "i", 1))
        x, pad = self._window_input(op, x_i, tuple(wt.shape[1:3]), strides, dil, pad, "conv")
        if depthwise:
            act = self.activation(op, o.scalar(4, "b"))
            if len(wt.shape) != 4 or wt.shape[0] != 1:
                self.fail(op, f"depthwise weights of shape {list(wt.shape)}: expected [1, kh, kw, C*m]")
            w = self.weights(op.inputs[1], op, 2, reshape=wt.shape[1:])
            kw = dict(self.out_q(op)) if q else {}
            return self.b.depthwise_conv2d(x, w, self.bias(op, 2, q), strides, dil, pad, act, self._name(op), **kw)
        act = self.activation(op, o.scalar(3, "b"))
        if len(wt.shape) != 4:
            self.fail(op, f"conv weights of shape {list(wt.shape)}: expected [O, kh, kw, I]")
        groups = x.shape[3] // wt.shape[3] if wt.shape[3] and x.shape[3] % wt.shape[3] == 0 else 0
        if groups < 1:
            self.fail(op, f"{x.shape[3]} input channels do not fit weights for {wt.shape[3]}")
        w = self.weights(op.inputs[1], op, 0)
        kw = dict(self.out_q(op)) if q else {}
        return self.b.conv2d(x, w, self.bias(op, 2, q), strides, dil, pad, groups, act, self._name(op), **kw)

    def _fc(self, op: TOp) -> Value:
        o = op.options
        x_i = op.inputs[0]
        self.check_types(op, x_i)
        act = self.activation(op, o.scalar(0, "b") if o else 0)
        if o is not None and o.scalar(1, "b") != 0:
            self.fail(op, "shuffled weights format is not supported")
        wt = self.t(op.inputs[1])
        if len(wt.shape) != 2:
            self.fail(op, f"weights of shape {list(wt.shape)}: expected [O, K]")
        binary = self._binary_fc(op, x_i, wt, act)
        if binary is not None:
            return binary
        x = self.act(x_i, op)
        q = self.is_q(x_i)
        k = wt.shape[1]
        size = int(np.prod(x.shape))
        if size % k:
            self.fail(op, f"input of shape {list(x.shape)} does not split into rows of {k}")
        if x.shape != (size // k, k):
            x = self.b.reshape(x, (size // k, k), name=f"{self._name(op)}.rows")
        w = self.weights(op.inputs[1], op, 0)
        kw = dict(self.out_q(op)) if q else {}
        y = self.b.fully_connected(x, w, self.bias(op, 2, q), act, self._name(op), **kw)
        return self._shape_as(op, y)

    def _binary_fc(self, op: TOp, x_i: int, wt: TTensor, act):
        """LceDequantize -> FULLY_CONNECTED whose row o is s_o * (±1): a binary dense layer (larq's
        QuantDense; TFLite folds a following BatchNorm's scale into the rows). The ±1 dot product is
        an exact integer, so s * dot + bias equals the float layer up to its summation rounding."""
        bits = self.bits_of.get(x_i)
        if bits is None or wt.type != 0 or wt.data is None or not (wt.data != 0).all():
            return None
        a = np.abs(wt.data.astype(np.float32))
        k = wt.shape[1]
        if not (a == a[:, :1]).all() or bits.shape[-1] != k:
            return None
        name = self._name(op)
        rows = int(np.prod(bits.shape)) // k
        if bits.shape != (rows, k):   # outer dims only: whole rows of k bits
            bits = self.b.reshape(bits, (rows, k), name=f"{name}.rows")
        w = self.b.const_bits(np.where(wt.data < 0, -1, 1).astype(np.int8), name=f"{name}.filter")
        bias = self.bias(op, 2, False)
        y = self.b.bfully_connected(bits, w, multiplier=a[:, 0], bias=np.zeros(wt.shape[0], np.float32)
                                    if bias is None else bias, activation=act, name=name)
        return self._shape_as(op, y)

    def _const_channels(self, op: TOp):
        """(activation index, constant [C] float vector) when one operand is that, else None."""
        for a_i, c_i in (op.inputs[:2], op.inputs[1::-1]):
            ct, at = self.t(c_i), self.t(a_i)
            if ct.data is not None and at.data is None and ct.type == 0 and at.type == 0 and at.shape and \
                    ct.data.size == at.shape[-1] and len(ct.shape) <= 1:
                return a_i, ct.data.astype(np.float32).reshape(-1)
        return None

    def _mul(self, op: TOp) -> Value:
        """x * c[C] (a per-channel scale, e.g. an exported AFFINE): AFFINE with a zero bias, exact."""
        found = self._const_channels(op)
        if found is None:
            self.fail(op, "only a float multiply by a constant per-channel vector is supported")
        act = self.activation(op, op.options.scalar(0, "b") if op.options else 0)
        x_i, c = found
        return self.b.affine(self.act(x_i, op), c, np.zeros_like(c), act, self._name(op))

    def _add(self, op: TOp) -> Value:
        found = self._const_channels(op)
        if found is not None:   # x + c[C]: AFFINE with a unit scale (1 * x is exact)
            act = self.activation(op, op.options.scalar(0, "b") if op.options else 0)
            x_i, c = found
            return self.b.affine(self.act(x_i, op), np.ones_like(c), c, act, self._name(op))
        a_i, b_i = op.inputs[:2]
        self.check_types(op, a_i)
        a, b = self.act(a_i, op), self.act(b_i, op)
        if a.shape != b.shape:
            self.fail(op, f"broadcasting add of {list(a.shape)} and {list(b.shape)} is not supported")
        act = self.activation(op, op.options.scalar(0, "b") if op.options else 0)
        kw = dict(self.out_q(op)) if self.is_q(a_i) else {}
        return self.b.add(a, b, act, self._name(op), **kw)

    def _pool(self, op: TOp, kind: str) -> Value:
        o = op.options
        x_i = op.inputs[0]
        self.check_types(op, x_i)
        pad = _PAD.get(o.scalar(0, "b"))
        strides = (o.scalar(2, "i"), o.scalar(1, "i"))
        kernel = (o.scalar(4, "i"), o.scalar(3, "i"))
        x, pad = self._window_input(op, x_i, kernel, strides, (1, 1), pad, kind)
        act = self.activation(op, o.scalar(5, "b"))
        if self.is_q(x_i):
            if self.qparams(self.t(x_i), op) != self.qparams(self.t(op.outputs[0]), op):
                self.fail(op, "quantized pooling needs the same scale and zero point on input and output")
            if act is not None:
                self.fail(op, f"a fused {act} on quantized pooling is not supported")
        if kind == "max":
            y = self.b.max_pool2d(x, kernel, strides, pad, name=self._name(op))
        else:   # uint8 kernels round (sum + n/2) / n on codes >= 0: half up, also on the shifted codes
            # a folded PAD's zeros are taps TFLite's VALID pool counts
            y = self.b.avg_pool2d(x, kernel, strides, pad, count_include_pad=x_i in self.padded,
                                  name=self._name(op), rounding="up" if self.t(x_i).type == 3 else "away")
        if act == "relu":
            y = self.b.relu(y, name=f"{self._name(op)}.relu")
        elif act == "relu6":
            y = self.b.relu6(y, name=f"{self._name(op)}.relu6")
        return y

    def _mean(self, op: TOp) -> Value:
        x_i = op.inputs[0]
        self.check_types(op, x_i)
        x = self.act(x_i, op)
        axes = self.t(op.inputs[1]).data
        if axes is None or len(x.shape) != 4 or sorted(int(a) % 4 for a in axes.reshape(-1)) != [1, 2]:
            self.fail(op, "only a mean over the spatial axes (1, 2) of a 4-D tensor is supported")
        kw = dict(self.out_q(op)) if self.is_q(x_i) else {}
        return self._shape_as(op, self.b.global_avg_pool(x, self._name(op), **kw))

    def _pad(self, op: TOp):
        """PAD / PADV2. The runtime has no pad op, but its convs and pools pad: the padded tensor is
        remembered and folded into the conv or pool that reads it (_window_input). The edgebnn
        exporter writes these for padding that is neither SAME nor VALID; Keras for ZeroPadding2D."""
        x_i = op.inputs[0]
        self.check_types(op, x_i)
        pt = self.t(op.inputs[1])
        xt = self.t(x_i)
        if pt.data is None or pt.data.shape != (4, 2) or len(xt.shape) != 4:
            self.fail(op, "only a constant [4, 2] padding of a 4-D tensor is supported")
        p = pt.data.astype(np.int64)
        if (p < 0).any() or p[0].any() or p[3].any():
            self.fail(op, f"paddings {p.tolist()}: only non-negative padding of height and width is supported")
        if self.is_q(x_i) and self.qparams(xt, op) != self.qparams(self.t(op.outputs[0]), op):
            self.fail(op, "a quantized pad needs the same scale and zero point on input and output")
        self.padded[op.outputs[0]] = (x_i, (int(p[1, 0]), int(p[2, 0]), int(p[1, 1]), int(p[2, 1])),
                                      self._pad_fill(op), op)
        self.lazy[op.outputs[0]] = lambda: self.fail(
            op, "its output is read by an op other than a convolution or pool; edgebnn folds explicit padding "
                "into the convolution or pool that follows it and has no standalone pad")
        return None

    def _pad_fill(self, op: TOp) -> str:
        """'zero' when the pad writes real zeros (PAD: quantized ones write the zero point), 'lowest' when
        PADV2 writes -inf or the lowest code (a padded tap never wins a max)."""
        if op.name == "PAD" or len(op.inputs) < 3 or op.inputs[2] < 0:
            return "zero"
        vt, xt = self.t(op.inputs[2]), self.t(op.inputs[0])
        if vt.data is None or vt.data.size != 1:
            self.fail(op, "the pad value must be a constant scalar")
        v = vt.data.reshape(-1)[0]
        if self.is_q(op.inputs[0]):
            if int(v) == int(xt.zero_point[0]):
                return "zero"
            if int(v) == (0 if xt.type == 3 else -128):
                return "lowest"
        elif float(v) == 0.0:
            return "zero"
        elif float(v) <= float(np.finfo(np.float32).min):
            return "lowest"
        self.fail(op, f"pad value {v}: only zero, or -inf / the lowest code before a max pool, is supported")

    def _non_negative(self, i: int, op: TOp) -> bool:
        """Whether tensor i is >= 0 by construction: out of a ReLU, or quantized with no code below zero."""
        if self.is_q(i):
            _, zp = self.qparams(self.t(i), op)
            return zp == -128
        v = self.vals.get(i)
        made = next((op for op in reversed(self.b.graph.ops) if v is not None and v.index in op.outputs), None)
        return made is not None and (made.type in (OpType.RELU, OpType.RELU6) or int(
            made.attrs.get(Attr.ACTIVATION, (0,))[0]) in (Activation.RELU, Activation.RELU6))

    def _window_input(self, op: TOp, x_i: int, kernel, strides, dil, pad: str, kind: str):
        """(input value, padding) of a conv ('conv') or pool ('max', 'avg') reading x_i: a PAD that
        made x_i is folded into the op's own padding, where the two agree on what a padded tap is."""
        if x_i not in self.padded:
            return self.act(x_i, op), pad
        src, (t, l, b, r), fill, pad_op = self.padded[x_i]
        if kind == "max":
            ok = fill == "lowest" or self._non_negative(src, pad_op)   # zeros change no maximum of values >= 0
        else:
            ok = fill == "zero" and (kind == "conv" or pad == "valid")
        if not ok:
            what = {"conv": "a convolution pads with zeros", "avg": "an average pool with SAME padding counts only "
                    "real taps", "max": "a max pool of values that may be negative ignores padded taps"}[kind]
            self.fail(op, f"reads {pad_op.name} #{pad_op.index}, which pads with {fill} values; {what}")
        own = resolve_padding(pad, self.t(x_i).shape[1:3], kernel, strides, dil)
        return self.act(src, op), (own[0] + t, own[1] + l, own[2] + b, own[3] + r)

    def _shape_as(self, op: TOp, y: Value) -> Value:
        shape = self.t(op.outputs[0]).shape
        if shape and tuple(shape) != tuple(y.shape):
            y = self.b.reshape(y, shape, name=f"{self._name(op)}.reshape")
        return y

    def _reshape(self, op: TOp) -> Value:
        x_i = op.inputs[0]
        if x_i in self.vals and self.vals[x_i].dtype is DType.BIT1:
            return reshape_bits(self, op, self.vals[x_i])
        self.check_types(op, x_i)
        x = self.act(x_i, op)
        if self.is_q(x_i) and self.qparams(self.t(x_i), op) != self.qparams(self.t(op.outputs[0]), op):
            self.fail(op, "a reshape that changes the quantization is not supported")
        shape = self.t(op.outputs[0]).shape
        if not shape:
            self.fail(op, "the output shape is not static")
        return self.b.reshape(x, shape, name=self._name(op))

    def _softmax(self, op: TOp) -> Value:
        beta = op.options.scalar(0, "f", 1.0) if op.options else 1.0
        if beta != 1.0:
            self.fail(op, f"softmax with beta {beta} is not supported (only 1.0)")
        x = self.float_of(op.inputs[0], op)
        if len(x.shape) != 2:
            self.fail(op, f"softmax over a {len(x.shape)}-D tensor: only [N, K] is supported")
        return self.b.softmax(x, self._name(op))

    def float_of(self, i: int, op: TOp) -> Value:
        x = self.act(i, op)
        return self.b.dequantize(x, name=f"{self._name(op)}.dequantize") if x.dtype is DType.I8 else x

    def _quantize(self, op: TOp) -> Value:
        yt = self.t(op.outputs[0])
        if yt.type not in (3, 9):
            self.fail(op, f"quantizing to {yt.type_name} is not supported (uint8, int8 are)")
        s, z = self.qparams(yt, op)
        # int8 -> int8 requantization goes through float: exact up to TFLite's integer rounding
        x = self.float_of(op.inputs[0], op)
        return self.b.quantize(x, s, z, name=self._name(op))

    def _dequantize(self, op: TOp) -> Value:
        xt = self.t(op.inputs[0])
        if xt.data is not None:  # float16 / int8 weights stored compressed: a constant
            if xt.type == 1:
                return self.b.const(xt.data.astype(np.float32), name=self._name(op))
            self.fail(op, f"dequantizing a constant {xt.type_name} tensor is not supported")
        return self.float_of(op.inputs[0], op)

    def _relu(self, op: TOp, six: bool) -> Value:
        if self.is_q(op.inputs[0]):
            self.fail(op, "a standalone quantized ReLU is not supported (fused activations are)")
        x = self.act(op.inputs[0], op)
        return (self.b.relu6 if six else self.b.relu)(x, self._name(op))

    def _concat(self, op: TOp) -> Value:
        o = op.options
        xs = [self.act(i, op) for i in op.inputs]
        nd = len(xs[0].shape)
        axis = o.scalar(0, "i") % nd
        if o.scalar(1, "b") != 0:
            self.fail(op, "a fused activation on concatenation is not supported")
        if self.is_q(op.inputs[0]):
            qs = {self.qparams(self.t(i), op) for i in list(op.inputs) + [op.outputs[0]]}
            if len(qs) != 1:
                self.fail(op, "quantized concatenation needs one scale and zero point on all inputs and the output")
        return self.b.concat(xs, axis, self._name(op))

    def _squeeze(self, op: TOp) -> Value:
        return self._reshape(op)

    # -- driver ----------------------------------------------------------------------------
    def _needed(self) -> set[int]:
        """Tensors the chosen outputs depend on (all of them for the model's own outputs)."""
        producer = {o: op for op in self.m.ops for o in op.outputs}
        seen, stack = set(), list(self.outputs)
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            if i in producer:
                stack.extend(v for v in producer[i].inputs if v >= 0)
        return seen

    def _name(self, op: TOp) -> str:
        return self.t(op.outputs[0]).name.split(";")[0] or f"op{op.index}"

    def lower(self):
        m = self.m
        if m.n_subgraphs != 1:
            raise UserError(f"{self.path}: the model has {m.n_subgraphs} subgraphs; only single-subgraph models "
                            "can be converted")
        if len(m.inputs) != 1:
            raise UserError(f"{self.path}: the model has {len(m.inputs)} inputs; only single-input models can be "
                            "converted")
        unknown = sorted({op.name for op in m.ops if op.name not in SUPPORTED})
        if unknown:
            first = next(op for op in m.ops if op.name == unknown[0])
            kind = "custom op" if first.custom else "op"
            raise UserError(f"{self.path}: {kind} {', '.join(unknown)} (first: {self.where(first)}) cannot run on "
                            f"the edgebnn runtime; supported TFLite ops: {', '.join(SUPPORTED)}")
        xt = self.t(m.inputs[0])
        if len(xt.shape) != 4 or min(xt.shape) < 1:
            raise UserError(f"{self.path}: input '{xt.name}' has shape {list(xt.shape)}; a 4-D NHWC image input "
                            "is expected")
        if xt.type not in (0, 3, 9):
            raise UserError(f"{self.path}: input '{xt.name}' is {xt.type_name}; float32, uint8 or int8 are supported")
        x = self.b.input(xt.name.split(";")[0] or "input", xt.shape, layout="NHWC")
        nid = self.wg.add("input", [], xt.shape, name=xt.name, source=f"input '{xt.name}' ({xt.type_name})")
        if xt.type != 0:
            s, z = self.qparams(xt, m.ops[0] if m.ops else None)
            x = self.b.quantize(x, s, z, name="input.quantize")
            self.layer_of_op["input.quantize"] = nid
        self.vals[m.inputs[0]] = x
        handlers = {"CONV_2D": lambda op: self._conv(op, False), "DEPTHWISE_CONV_2D": lambda op: self._conv(op, True),
                    "FULLY_CONNECTED": self._fc, "ADD": self._add, "AVERAGE_POOL_2D": lambda op: self._pool(op, "avg"),
                    "MAX_POOL_2D": lambda op: self._pool(op, "max"), "MEAN": self._mean, "RESHAPE": self._reshape,
                    "SQUEEZE": self._squeeze, "SOFTMAX": self._softmax, "QUANTIZE": self._quantize,
                    "DEQUANTIZE": self._dequantize, "RELU": lambda op: self._relu(op, False),
                    "RELU6": lambda op: self._relu(op, True), "CONCATENATION": self._concat, "MUL": self._mul,
                    "PAD": self._pad, "PADV2": self._pad,
                    **LceOps(self).handlers()}
        needed = self._needed()
        for op in m.ops:
            if op.outputs[0] not in needed:
                continue
            before = len(self.b.graph.ops)
            nid = self.wg.add("tflite", [], self.t(op.outputs[0]).shape, name=self._name(op),
                              source=f"{op.name} #{op.index}")
            try:
                y = handlers[op.name](op)
            except UserError:
                raise
            except ValueError as e:
                self.fail(op, str(e))
            if len(op.outputs) != 1:
                self.fail(op, f"{len(op.outputs)} outputs: only single-output ops are supported")
            if y is not None:   # None: deferred (self.lazy)
                self.vals[op.outputs[0]] = y
            for irop in self.b.graph.ops[before:]:
                self.layer_of_op[irop.name] = nid
        for k, i in enumerate(self.outputs):
            if i not in self.vals and i in self.lazy:
                self.vals[i] = self.lazy.pop(i)()
            if i not in self.vals:
                raise UserError(f"{self.path}: output tensor '{self.t(i).name}' is not computed by any operator")
            y = self.vals[i]
            if y.dtype in (DType.I8, DType.BIT1):   # packed LCE words come out as their ±1 values
                before = len(self.b.graph.ops)
                y = (self.b.dequantize(y, name=f"output{k}.dequantize") if y.dtype is DType.I8
                     else self.b.unpack(y, name=f"output{k}.unpack"))
                for irop in self.b.graph.ops[before:]:
                    self.layer_of_op[irop.name] = nid
            self.b.output(y, name=self.t(i).name.split(";")[0] or f"output{k}")
        return self.b.build(), self.layer_of_op, self.wg


def lower(model: TModel, path, outputs=None):
    """(IR graph, IR op name -> report node id, the report's one-node-per-TFLite-op graph).
    outputs: TFLite tensor indices to output instead of the model's (e.g. the logits before SOFTMAX)."""
    return _Lowering(model, path, outputs).lower()
