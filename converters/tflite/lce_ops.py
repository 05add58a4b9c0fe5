"""Larq Compute Engine's custom ops, lowered into the packed IR (used by lower.py).

LCE packs a binary tensor [..., C] as int32 [..., ceil(C/32)]: element c is bit c % 32 of word
c // 32, bit 1 = -1. Our bit1 values keep the logical shape, so each packed TFLite tensor maps to
a bit1 Value with the channel count LCE's options or producers give (channels_in, the filter's O).

LceBconv2d counts differing bits p over K = kh*kw*C/groups taps: the ±1 dot product is K - 2p.
Groups: a packed filter with fewer words per tap than the input (groups = words(C) / filter words,
C/groups a multiple of 32) or a float filter with fewer channels is a grouped conv.
- Packed output: bit 1 (-1) when p > T, that is dot < K - 2T: threshold K - 2T, direction +1.
- Float output: LCE clamps the dot for its fused activation, then multiplier * dot + bias. With
  no activation that is our float epilogue; with one it becomes bconv -> RELU/RELU6/HARDTANH ->
  AFFINE (exact: the same operations in the same order).
LceDequantize is deferred: larq's QuantDense converts to LceQuantize -> LceDequantize -> a float
FULLY_CONNECTED with ±1 rows (times a folded BatchNorm scale), which lower.py turns into a binary
dense layer on the bits; the unpack is emitted only if something else reads the floats.
Options (flexbuffer map, LCE 0.16): channels_in, stride_height/width, dilation_height/width_factor,
padding (TFLite Padding: 0 SAME, 1 VALID), pad_values (0 or 1), fused_activation_function
(TFLite ActivationFunctionType). Older files spell padding and the activation as strings.
"""
from __future__ import annotations

import numpy as np

from edgebnn.errors import UserError
from edgebnn.ir.builder import Value
from edgebnn.ir.dtypes import DType

from .flexbuffers import FlexError, loads
from .schema import TOp

NAMES = ("LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d")
_PADDING = {0: "same", 1: "valid", "SAME": "same", "VALID": "valid", "same": "same", "valid": "valid"}
_ACTS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", "NONE": None, "": None, "RELU": "relu",
         "RELU_N1_TO_1": "relu_n1_to_1", "RELU6": "relu6"}


def unpack32(words: np.ndarray, c: int) -> np.ndarray:
    """int32 words [..., ceil(C/32)] in LCE's layout -> ±1 int8 [..., c]."""
    w = np.ascontiguousarray(words, dtype="<i4")
    bits = np.unpackbits(w.view(np.uint8).reshape(w.shape[:-1] + (-1,)), axis=-1, bitorder="little")
    return np.where(bits[..., :c] == 1, -1, 1).astype(np.int8)


class LceOps:
    """Handlers for LCE's ops; `lw` is the running _Lowering (its builder, values and errors)."""

    def __init__(self, lw):
        self.lw = lw

    def handlers(self) -> dict:
        return {"LceQuantize": self.quantize, "LceDequantize": self.dequantize, "LceBconv2d": self.bconv2d,
                "LceBMaxPool2d": self.bmaxpool2d}

    def options(self, op: TOp) -> dict:
        try:
            m = loads(op.custom_options) if op.custom_options else {}
        except FlexError as e:
            self.lw.fail(op, f"custom options are not a FlexBuffer ({e})")
        if not isinstance(m, dict):
            self.lw.fail(op, "custom options are not a FlexBuffer map")
        return m

    def int_opt(self, op: TOp, m: dict, key: str, default=None) -> int:
        v = m.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            self.lw.fail(op, f"option '{key}' is {v!r}; expected an integer")
        return v

    def bits_in(self, op: TOp, i: int) -> Value:
        x = self.lw.act(op.inputs[i], op)
        if x.dtype is not DType.BIT1:
            self.lw.fail(op, f"input '{self.lw.t(op.inputs[i]).name}' is not a packed LCE tensor")
        return x

    def quantize(self, op: TOp) -> Value:
        xt = self.lw.t(op.inputs[0])
        if xt.type != 0:
            self.lw.fail(op, f"LceQuantize of {xt.type_name} is not supported (float32 is)")
        # LCE writes bit 1 where x < 0: SIGN_PACK with no thresholds, the same rule
        return self.lw.b.sign_pack(self.lw.act(op.inputs[0], op), name=self.lw._name(op))

    def dequantize(self, op: TOp) -> Value:
        if self.lw.t(op.outputs[0]).type != 0:
            self.lw.fail(op, "LceDequantize to a non-float output is not supported")
        x, name, out = self.bits_in(op, 0), self.lw._name(op), op.outputs[0]
        self.lw.bits_of[out] = x
        self.lw.lazy[out] = lambda: self.lw.b.unpack(x, name=name)
        return None

    def bmaxpool2d(self, op: TOp) -> Value:
        m = self.options(op)
        pad = _PADDING.get(m.get("padding"))
        if pad is None:
            self.lw.fail(op, f"padding {m.get('padding')!r} (SAME or VALID expected)")
        kernel = (self.int_opt(op, m, "filter_height"), self.int_opt(op, m, "filter_width"))
        strides = (self.int_opt(op, m, "stride_height"), self.int_opt(op, m, "stride_width"))
        return self.lw.b.bmax_pool2d(self.bits_in(op, 0), kernel, strides, pad, name=self.lw._name(op))

    def bconv2d(self, op: TOp) -> Value:
        lw, b = self.lw, self.lw.b
        m = self.options(op)
        if len(op.inputs) != 5:
            lw.fail(op, f"{len(op.inputs)} inputs; LceBconv2d has 5 (input, filter, post_activation_multiplier, "
                        "post_activation_bias, output_threshold)")
        name = lw._name(op)
        x = self.bits_in(op, 0)
        c = self.int_opt(op, m, "channels_in", x.shape[3])
        if c != x.shape[3]:
            lw.fail(op, f"channels_in {c} disagrees with the {x.shape[3]} channels of its input")
        ft = lw.t(op.inputs[1])
        if ft.data is None or len(ft.shape) != 4:
            lw.fail(op, "the filter must be a constant [O, kh, kw, C]")
        if ft.type == 2:   # bitpacked OHWI; fewer words per tap than the input has: groups (LCE's rule)
            words = (c + 31) // 32
            groups = words // ft.shape[3] if ft.shape[3] and words % ft.shape[3] == 0 else 0
            if groups < 1 or c % groups or (groups > 1 and (c // groups) % 32):
                lw.fail(op, f"the packed filter has {ft.shape[3]} words per tap, which fits no grouping of {c} "
                            "input channels (LCE groups need a multiple of 32 channels per group)")
            pm1 = unpack32(ft.data, c // groups)
        elif ft.type == 0:
            groups = c // ft.shape[3] if ft.shape[3] and c % ft.shape[3] == 0 else 0
            if groups < 1:
                lw.fail(op, f"the filter has {ft.shape[3]} input channels, which do not divide the input's {c}")
            pm1 = np.where(ft.data < 0, -1, 1).astype(np.int8)
        else:
            lw.fail(op, f"a {ft.type_name} filter (int32 bitpacked or float32 expected)")
        o, kh, kw, icg = pm1.shape
        if o % groups:
            lw.fail(op, f"{o} filters do not split into {groups} groups")
        pad = _PADDING.get(m.get("padding"))
        act = _ACTS.get(m.get("fused_activation_function", 0), "?")
        pad_value = self.int_opt(op, m, "pad_values", 0)
        if pad is None or act == "?" or pad_value not in (0, 1):
            lw.fail(op, f"options padding={m.get('padding')!r}, fused_activation_function="
                        f"{m.get('fused_activation_function')!r}, pad_values={pad_value!r} are not LCE's")
        common = dict(strides=(self.int_opt(op, m, "stride_height"), self.int_opt(op, m, "stride_width")),
                      dilations=(self.int_opt(op, m, "dilation_height_factor", 1),
                                 self.int_opt(op, m, "dilation_width_factor", 1)),
                      padding=pad, pad_value=pad_value, groups=groups)
        w = b.const_bits(pm1, name=f"{name}.filter")
        yt = lw.t(op.outputs[0])
        if yt.type == 2:
            tt = lw.t(op.inputs[4]) if op.inputs[4] >= 0 else None
            if tt is None or tt.data is None or tt.type != 2 or tt.data.size != o:
                lw.fail(op, f"packed output needs a constant int32 output_threshold of {o} values")
            k = kh * kw * icg
            thr = k - 2 * tt.data.astype(np.int64).reshape(o)
            thr = np.clip(thr, -(1 << 31), (1 << 31) - 1).astype(np.int32)   # beyond ±K both mean "always"
            return b.bconv2d(x, w, thresholds=thr, directions=np.ones(o, np.int32), name=name, **common)
        if yt.type != 0:
            lw.fail(op, f"{yt.type_name} output is not supported (float32 and int32 bitpacked are)")
        mul, bias = (self.vec(op, op.inputs[k], o, what) for k, what in ((2, "post_activation_multiplier"),
                                                                          (3, "post_activation_bias")))
        if act is None:
            return b.bconv2d(x, w, multiplier=mul, bias=bias, name=name, **common)
        y = b.bconv2d(x, w, name=f"{name}.dot", **common)
        if act == "relu":
            y = b.relu(y, name=f"{name}.relu")
        elif act == "relu6":
            y = b.relu6(y, name=f"{name}.relu6")
        else:
            y = b.hardtanh(y, -1.0, 1.0, name=f"{name}.relu_n1_to_1")
        return b.affine(y, mul, bias, name=name)

    def vec(self, op: TOp, i: int, n: int, what: str) -> np.ndarray:
        t = self.lw.t(i) if i >= 0 else None
        if t is None or t.data is None or t.type != 0 or t.data.size != n:
            self.lw.fail(op, f"{what} must be a constant float32 vector of {n} values")
        return t.data.astype(np.float32).reshape(n)


def reshape_bits(lw, op: TOp, x: Value) -> Value:
    """RESHAPE of a packed LCE tensor: its shapes count words; ours count elements."""
    src, dst = lw.t(op.inputs[0]).shape, lw.t(op.outputs[0]).shape
    if not dst:
        lw.fail(op, "the output shape is not static")
    c = x.shape[-1]
    if src and src[-1] == dst[-1]:          # only outer dims change: the same rows of c elements
        shape = tuple(dst[:-1]) + (c,)
    elif c % 32 == 0:                       # no padding bits: words are 32 elements each
        shape = tuple(dst[:-1]) + (dst[-1] * 32,)
    else:
        raise UserError(f"{lw.path}: {lw.where(op)}: reshaping packed rows of {c} elements (not a multiple of 32) "
                        "across the channel axis is not supported")
    return lw.b.reshape(x, shape, name=lw._name(op))
