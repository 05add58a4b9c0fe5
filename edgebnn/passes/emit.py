"""Emit the working graph as the packed IR: NHWC layout, bit-packed binary tensors.

Layout is decided here and only here. 4-D activations become NHWC; the model's input and
outputs keep the source's NCHW at the boundary (the runtime transposes there), so no transpose
runs inside the graph. A flatten of an NHWC tensor yields features in (H, W, C) order instead of
PyTorch's (C, H, W): rather than transposing at run time, the columns of the next layer's weights
(and any per-feature constants before it) are permuted once here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.builder import GraphBuilder, Value
from ..ir.dtypes import DType
from ..ir.graph import Graph
from .graph import NO_CLAMP, WGraph


class EmitError(ValueError):
    """A node the packed IR cannot express; the message names it."""


@dataclass
class _Val:
    v: Value
    chw: tuple[int, int, int] | None = None  # 2-D value whose features are stored in (H, W, C) order

    @property
    def bits(self) -> bool:
        return self.v.dtype is DType.BIT1


def _feature_perm(chw) -> np.ndarray:
    """perm[i] = logical (C, H, W) feature index stored at position i of the (H, W, C) order."""
    c, h, w = chw
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def _act_clamp(clamp):
    """(fused activation, leftover hardtanh or None) for a clamp interval."""
    lo, hi = clamp
    if (lo, hi) == NO_CLAMP:
        return None, None
    if lo == 0 and hi == np.inf:
        return "relu", None
    if lo == 0 and hi == 6:
        return "relu6", None
    return None, (lo, hi)


class Emitter:
    def __init__(self, g: WGraph):
        self.g = g
        self.b = GraphBuilder()
        self.vals: dict[int, _Val] = {}
        self.layer_of_op: dict[str, int] = {}  # IR op name -> working node id, for the report
        self.users = g.users()

    # -- helpers ---------------------------------------------------------------------------
    def _float(self, i: int) -> _Val:
        x = self.vals[i]
        if x.bits:
            return _Val(self.b.unpack(x.v, name=f"{self.g[i].name}.unpack"), x.chw)
        return x

    def _bits(self, i: int) -> _Val:
        x = self.vals[i]
        if not x.bits:
            return _Val(self.b.sign_pack(x.v, name=f"{self.g[i].name}.pack"), x.chw)
        return x

    def _vec(self, x: _Val, vec):
        """A per-channel (4-D) or per-feature (2-D) vector in storage order."""
        if vec is None or x.chw is None:
            return vec
        return np.asarray(vec)[_feature_perm(x.chw)]

    def _cols(self, x: _Val, w: np.ndarray) -> np.ndarray:
        return w if x.chw is None else w[:, _feature_perm(x.chw)]

    def _finish(self, n, v: Value, clamp) -> Value:
        _, rest = _act_clamp(clamp)
        if rest is not None:
            v = self.b.hardtanh(v, rest[0], rest[1], name=f"{n.name}.clamp")
        return v

    # -- nodes -----------------------------------------------------------------------------
    def emit(self) -> tuple[Graph, dict[str, int]]:
        for n in self.g.order():
            before = len(self.b.graph.ops)
            try:
                self.vals[n.id] = getattr(self, "_" + n.op)(n)
            except EmitError:
                raise
            except (ValueError, KeyError) as e:
                raise EmitError(f"{n.op} '{n.name}'{' at ' + n.source if n.source else ''}: {e}") from e
            for op in self.b.graph.ops[before:]:
                self.layer_of_op[op.name] = n.id
        for k, i in enumerate(self.g.outputs):
            x = self._float(i)
            v = x.v
            if x.chw is not None:  # back to PyTorch's (C, H, W) feature order
                c, h, w = x.chw
                v = self.b.reshape(v, (v.shape[0], h, w, c), name=f"output{k}.unflatten")
                v = self.b.transpose(v, (0, 3, 1, 2), name=f"output{k}.to_chw")
                v = self.b.reshape(v, (v.shape[0], c * h * w), name=f"output{k}.flatten")
            self.b.output(v, name=f"output{k}" if len(self.g.outputs) > 1 else "output",
                          layout="NCHW" if len(v.shape) == 4 else "NHWC")
        return self.b.build(), self.layer_of_op

    def _input(self, n):
        s = n.shape
        if len(s) == 4:
            return _Val(self.b.input(n.name, (s[0], s[2], s[3], s[1]), layout="NCHW"))
        return _Val(self.b.input(n.name, s))

    def _sign(self, n):
        x = self._float(n.inputs[0])
        t = np.asarray(n.attrs["t"], np.float32)
        return _Val(self.b.sign_pack(x.v, None if not np.any(t) else self._vec(x, t), name=n.name), x.chw)

    def _conv(self, n):
        x = self._float(n.inputs[0])
        a = n.attrs
        w, g = a["w"], a["groups"]
        act, _ = _act_clamp(a["clamp"])
        o, ig, kh, kw = w.shape
        c = x.v.shape[3]
        if g > 1 and g == c and ig == 1:
            wc = self.b.const(w.reshape(o, kh, kw).transpose(1, 2, 0), name=f"{n.name}.weight")
            v = self.b.depthwise_conv2d(x.v, wc, a.get("b"), a["stride"], a["dil"], a["pads"], act, n.name)
        else:
            wc = self.b.const(w.transpose(0, 2, 3, 1), name=f"{n.name}.weight")
            v = self.b.conv2d(x.v, wc, a.get("b"), a["stride"], a["dil"], a["pads"], g, act, n.name)
        return _Val(self._finish(n, v, a["clamp"]))

    def _hetconv(self, n):
        x = self._float(n.inputs[0])
        a = n.attrs
        act, _ = _act_clamp(a["clamp"])
        w3 = self.b.const(a["w3"].transpose(0, 2, 3, 1), name=f"{n.name}.w3")
        w1 = self.b.const(a["w1"], name=f"{n.name}.w1")
        v = self.b.hetconv2d(x.v, w3, w1, a["part"], a.get("b"), a["stride"], a["dil"], a["pads"], act, n.name)
        return _Val(self._finish(n, v, a["clamp"]))

    def _linear(self, n):
        x = self._float(n.inputs[0])
        a = n.attrs
        act, _ = _act_clamp(a["clamp"])
        w = self.b.const(self._cols(x, a["w"]), name=f"{n.name}.weight")
        return _Val(self._finish(n, self.b.fully_connected(x.v, w, a.get("b"), act, n.name), a["clamp"]))

    def _binary_kwargs(self, n):
        a = n.attrs
        if "thresholds" in a:
            return dict(thresholds=a["thresholds"], directions=a["directions"])
        act, _ = _act_clamp(a["clamp"])
        return dict(multiplier=a["mult"], bias=a["bias"], activation=act)

    def _bconv(self, n):
        x = self._bits(n.inputs[0])
        a = n.attrs
        w = self.b.const_bits(a["wb"].transpose(0, 2, 3, 1), name=f"{n.name}.weight")
        v = self.b.bconv2d(x.v, w, a["stride"], a["dil"], a["pads"], a["pad_value"], name=n.name,
                           groups=a.get("groups", 1), **self._binary_kwargs(n))
        return _Val(v if "thresholds" in a else self._finish(n, v, a["clamp"]))

    def _bfc(self, n):
        x = self._bits(n.inputs[0])
        a = n.attrs
        w = self.b.const_bits(self._cols(x, a["wb"]), name=f"{n.name}.weight")
        v = self.b.bfully_connected(x.v, w, name=n.name, **self._binary_kwargs(n))
        return _Val(v if "thresholds" in a else self._finish(n, v, a["clamp"]))

    def _kquant(self, n):
        # K-bit convs quantize their float input themselves: pass the float through to them
        if all(u >= 0 and self.g[u].op in ("kconv", "kfc") for u in self.users[n.id]):
            return self._float(n.inputs[0])
        raise EmitError(f"k-bit activation quantizer '{n.name}'{' at ' + n.source if n.source else ''} feeds a "
                        "layer that is not a binary-weight conv or linear: the runtime quantizes only inside "
                        "K-bit convs")

    def _serial_fc(self, n, x: _Val, make):
        """An FC as a 1x1 conv over [N, 1, 1, K]: the runtime's K-bit and HORQ ops are convs."""
        k = x.v.shape[1]
        v4 = self.b.reshape(x.v, (x.v.shape[0], 1, 1, k), name=f"{n.name}.as_image")
        w = self.b.const_bits(self._cols(x, n.attrs["wb"]).reshape(-1, 1, 1, k), name=f"{n.name}.weight")
        y = make(v4, w)
        return self.b.reshape(y, (x.v.shape[0], y.shape[-1]), name=f"{n.name}.flatten")

    def _kconv(self, n):
        x = self._float(n.inputs[0])
        a = n.attrs
        act, _ = _act_clamp(a["clamp"])
        kw = dict(bits=a["bits"], step=a["step"], multiplier=a["mult"], bias=a["bias"], activation=act)
        if a.get("linear", False):  # a fully connected layer is a 1x1 K-bit conv on a 1x1 image
            nb, k = x.v.shape
            wb = self._cols(x, a["wb"])
            w = self.b.const_bits(wb.reshape(wb.shape[0], 1, 1, k), name=f"{n.name}.weight")
            xv = self.b.reshape(x.v, (nb, 1, 1, k), name=f"{n.name}.as_image")
            v = self.b.kbit_conv2d(xv, w, strides=1, dilations=1, padding=(0, 0, 0, 0), name=n.name, **kw)
            v = self.b.reshape(v, (nb, wb.shape[0]), name=f"{n.name}.flatten")
        else:
            w = self.b.const_bits(a["wb"].transpose(0, 2, 3, 1), name=f"{n.name}.weight")
            v = self.b.kbit_conv2d(x.v, w, strides=a["stride"], dilations=a["dil"], padding=a["pads"], name=n.name,
                                   **kw)
        return _Val(self._finish(n, v, a["clamp"]))


    def _kfc(self, n):
        x = self._float(n.inputs[0])
        a = n.attrs
        act, _ = _act_clamp(a["clamp"])
        v = self._serial_fc(n, x, lambda v4, w: self.b.kbit_conv2d(v4, w, a["bits"], a["step"], a["mult"], a["bias"],
                                                                   activation=act, name=n.name))
        return _Val(self._finish(n, v, a["clamp"]))

    def _horq(self, n):
        x = self._float(n.inputs[0])
        a = n.attrs
        act, _ = _act_clamp(a["clamp"])
        if a["wb"].ndim == 2:
            v = self._serial_fc(n, x, lambda v4, w: self.b.horq_conv2d(v4, w, a["order"], a["mult"], a["bias"],
                                                                       activation=act, name=n.name))
        else:
            if a.get("pad_value", 0.0) != 0.0:
                raise EmitError(f"HORQ layer '{n.name}' pads with {a['pad_value']}: the runtime's HORQ pads with 0")
            w = self.b.const_bits(a["wb"].transpose(0, 2, 3, 1), name=f"{n.name}.weight")
            v = self.b.horq_conv2d(x.v, w, a["order"], a["mult"], a["bias"], a["stride"], a["dil"], a["pads"], act,
                                   n.name)
        return _Val(self._finish(n, v, a["clamp"]))

    def _quant(self, n):
        """A k-bit activation quantizer no K-bit kernel took: clamp, then int8 QUANTIZE + DEQUANTIZE."""
        x = self._float(n.inputs[0])
        a = n.attrs
        z = a["zero"]
        if z != int(z):
            raise EmitError(f"quantizer '{n.name}'{' at ' + n.source if n.source else ''}: a fractional zero point "
                            "cannot be emulated with int8 QUANTIZE")
        z = int(z)
        # int8 zero point that keeps the codes in [-128, 127] (an unsigned 8-bit range moves down by 128)
        zp = z if a["qmin"] >= -128 and a["qmax"] <= 127 else z - a["qmin"] - 128
        scale = np.asarray(a["scale"], np.float32)
        uniform = bool(np.all(scale == scale.reshape(-1)[0]))
        v = x.v
        if uniform:
            s = float(scale.reshape(-1)[0])
            v = self.b.hardtanh(v, float(np.float32((a["qmin"] - z) * s)), float(np.float32((a["qmax"] - z) * s)),
                                name=f"{n.name}.range")
        else:  # per-channel scale: normalise to step 1 around the int8 ops
            ch = len(scale)
            v = self.b.affine(v, self._vec(x, (1 / scale.astype(np.float64)).astype(np.float32)),
                              np.zeros(ch, np.float32), None, f"{n.name}.unscale")
            v = self.b.hardtanh(v, float(a["qmin"] - z), float(a["qmax"] - z), name=f"{n.name}.range")
            s = 1.0
        v = self.b.dequantize(self.b.quantize(v, s, zp, name=f"{n.name}.quantize"), name=f"{n.name}.dequantize")
        if not uniform:
            v = self.b.affine(v, self._vec(x, scale), np.zeros(len(scale), np.float32), None, f"{n.name}.rescale")
        return _Val(v, x.chw)

    def _affine(self, n):
        x = self._float(n.inputs[0])
        clamp = n.attrs.get("clamp", NO_CLAMP)
        act, _ = _act_clamp(clamp)
        v = self.b.affine(x.v, self._vec(x, n.attrs["scale"]), self._vec(x, n.attrs["bias"]), act, n.name)
        return _Val(self._finish(n, v, clamp), x.chw)

    def _clamp(self, n):
        x = self._float(n.inputs[0])
        lo, hi = n.attrs["lo"], n.attrs["hi"]
        if lo == 0 and hi == np.inf:
            return _Val(self.b.relu(x.v, n.name), x.chw)
        if lo == 0 and hi == 6:
            return _Val(self.b.relu6(x.v, n.name), x.chw)
        return _Val(self.b.hardtanh(x.v, lo, hi, n.name), x.chw)

    def _abs(self, n):
        x = self._float(n.inputs[0])
        return _Val(self.b.abs(x.v, n.name), x.chw)

    def _cmean(self, n):
        return _Val(self.b.channel_mean(self._float(n.inputs[0]).v, n.name))

    def _mul(self, n):
        a, b = self._float(n.inputs[0]), self._float(n.inputs[1])
        if b.v.shape != a.v.shape and b.v.shape[-1] != 1:
            raise EmitError(f"mul '{n.name}': operands {a.v.shape} and {b.v.shape} do not broadcast")
        if b.v.shape == a.v.shape and a.chw != b.chw:
            raise EmitError(f"mul '{n.name}': operands flattened differently")
        return _Val(self.b.mul(a.v, b.v, n.name), a.chw)

    def _prelu(self, n):
        x = self._float(n.inputs[0])
        return _Val(self.b.prelu(x.v, self._vec(x, n.attrs["slope"]), n.name), x.chw)

    def _maxpool(self, n):
        x = self.vals[n.inputs[0]]
        a = n.attrs
        if x.bits:
            return _Val(self.b.bmax_pool2d(x.v, a["kernel"], a["stride"], a["pads"], n.name))
        return _Val(self.b.max_pool2d(x.v, a["kernel"], a["stride"], a["pads"], n.name))

    def _avgpool(self, n):
        x = self._float(n.inputs[0])
        a = n.attrs
        return _Val(self.b.avg_pool2d(x.v, a["kernel"], a["stride"], a["pads"], a["count_include_pad"], n.name))

    def _gap(self, n):
        return _Val(self.b.global_avg_pool(self._float(n.inputs[0]).v, n.name))

    def _add(self, n):
        a, b = self._float(n.inputs[0]), self._float(n.inputs[1])
        if a.chw != b.chw:
            raise EmitError(f"add '{n.name}': operands flattened differently")
        act, _ = _act_clamp(n.attrs.get("clamp", NO_CLAMP))
        return _Val(self._finish(n, self.b.add(a.v, b.v, act, n.name), n.attrs.get("clamp", NO_CLAMP)), a.chw)

    def _cat(self, n):
        xs = [self.vals[i] for i in n.inputs]
        if not all(x.bits for x in xs):
            xs = [self._float(i) for i in n.inputs]
        nd = len(n.shape)
        if nd == 4 and n.attrs["axis"] == 1:
            axis = 3
        elif nd == 2 and n.attrs["axis"] == 1 and all(x.chw is None for x in xs):
            axis = 1
        else:
            raise EmitError(f"concatenation '{n.name}' along axis {n.attrs['axis']} of a {nd}-D tensor "
                            f"is not supported (only channels)")
        return _Val(self.b.concat([x.v for x in xs], axis, n.name))

    def _flatten(self, n):
        x = self.vals[n.inputs[0]]
        if len(x.v.shape) != 4:
            return x
        _, h, w, c = x.v.shape
        chw = (c, h, w) if (h * w > 1 and c > 1) else None
        return _Val(self.b.reshape(x.v, (x.v.shape[0], h * w * c), n.name), chw)

    def _softmax(self, n):
        x = self._float(n.inputs[0])
        if len(x.v.shape) != 2:
            raise EmitError(f"softmax '{n.name}' over a {len(x.v.shape)}-D tensor: only [N, K] is supported")
        return _Val(self.b.softmax(x.v, n.name), x.chw)


def emit(g: WGraph, metadata: dict[str, str] | None = None) -> tuple[Graph, dict[str, int]]:
    graph, layer_of_op = Emitter(g).emit()
    graph.metadata.update({k: str(v) for k, v in (metadata or {}).items()})
    return graph, layer_of_op
