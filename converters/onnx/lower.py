"""Lower an ONNX / QONNX graph to the working graph (NCHW semantics, NumPy constants).

As in the PyTorch front-end:
  * Whatever depends only on initializers is a constant, taken from the reference run, so
    weight quantizers (BipolarQuant, Quant, Trunc on weights) arrive as their dequantized values.
  * Elementwise ops on one activation are deferred and looked at as a chain when something
    structural reads them: if the chain's output is ±c for every input it is a sign (whatever
    ops wrote it: Sign, Where(x >= t, 1, -1), BipolarQuant, a 1-bit Quant), with per-channel
    thresholds found by probing the chain itself. A k-bit Quant on an activation becomes a
    `quant` node, which the kbit pass maps onto the runtime's K-bit conv when the weights after
    it are binary, and the emitter emulates otherwise.
  * Every node carries "OpType 'node name'" as its source, for the report and for errors.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgebnn.ir.dtypes import f32_to_ord, ord_to_f32
from edgebnn.errors import UserError
from edgebnn.passes.graph import NO_CLAMP, WGraph, channel_vector

from .qonnx_ops import DOMAINS, REF_OPS, int_range


class UnsupportedOp(UserError):
    pass


# Elementwise ops that may sit in a chain on one activation (their other operands constant).
ELEMENTWISE = {
    "Sign", "Where", "GreaterOrEqual", "Greater", "Less", "LessOrEqual", "Equal", "Not", "And", "Or", "Cast",
    "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Clip", "Relu", "LeakyRelu", "PRelu", "Identity", "Dropout",
    "BipolarQuant", "Quant", "Trunc", "Max", "Min", "Pow", "Tanh", "Sigmoid", "HardSigmoid", "Floor", "Ceil",
    "Round", "Sqrt", "Reciprocal",
}
SIGNLIKE = {"Sign", "Where", "GreaterOrEqual", "Greater", "Less", "LessOrEqual", "BipolarQuant", "Quant"}
STRUCTURAL = {
    "Conv", "Gemm", "MatMul", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Softmax",
    "ReduceMean", "Shape",
}


def _src(node) -> str:
    return f"{node.op_type} '{node.name or node.output[0]}'"


def _attrs(node) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def check_supported(model) -> None:
    """Name the first op that reads the input and that the runtime cannot run, before anything else."""
    inits = {i.name for i in model.graph.initializer}
    live = {i.name for i in model.graph.input if i.name not in inits}
    for node in model.graph.node:
        if node.op_type == "Shape":
            continue  # static shapes: its value is a constant
        if not any(i in live for i in node.input if i):
            continue
        live.update(o for o in node.output if o)
        if node.domain not in ("", "ai.onnx") + DOMAINS or \
                (node.op_type not in ELEMENTWISE and node.op_type not in STRUCTURAL):
            dom = f"{node.domain}." if node.domain not in ("", "ai.onnx") else ""
            raise UnsupportedOp(f"unsupported ONNX op {dom}{node.op_type} at node '{node.name or node.output[0]}': "
                                "the runtime has no kernel for it; replace it, or keep that part of the model "
                                "outside the converted graph")





class _NotSign(Exception):
    pass


class Lowering:
    def __init__(self, model, input_name: str, values: dict):
        self.model = model
        self.values = values          # every value of the reference run
        self.input_name = input_name
        self.g = WGraph()
        self.consts: set = {i.name for i in model.graph.initializer}
        self.acts: dict = {}          # value name -> working node id
        self.root: dict = {}          # deferred value -> the materialized value its chain starts at
        self.producer: dict = {}      # value name -> onnx node
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)

    def shape(self, name) -> tuple:
        return tuple(int(d) for d in self.values[name].shape)

    def c(self, name) -> np.ndarray:
        return np.asarray(self.values[name])

    def is_const(self, name) -> bool:
        return not name or name in self.consts

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> WGraph:
        shape = self.shape(self.input_name)
        self.acts[self.input_name] = self.g.add("input", [], shape, name="input")
        for node in self.model.graph.node:
            for o in node.output:
                self.producer[o] = node
            ins = [i for i in node.input if i]
            if node.op_type == "Shape" or all(self.is_const(i) for i in ins):
                self.consts.update(o for o in node.output if o)   # its value does not depend on the input
                continue
            acts = [i for i in ins if not self.is_const(i)]
            roots = {self.root.get(a, a) for a in acts}
            if node.op_type in ELEMENTWISE and len(roots) == 1 and not (node.op_type in ("Add", "Sub", "Mul", "Div")
                                                                      and len(set(acts)) > 1):
                self.root[node.output[0]] = roots.pop()
                continue
            handler = getattr(self, "_op_" + node.op_type, None)
            if handler is None:
                raise UnsupportedOp(f"unsupported ONNX op {node.op_type} at node '{node.name or node.output[0]}' "
                                    "(on activations): the runtime has no kernel for it")
            handler(node)
        for o in self.model.graph.output:
            if o.name in self.consts:
                continue
            self.g.outputs.append(self._mat(o.name))
        if not self.g.outputs:
            raise UserError("the model has no output that depends on its input")
        return self.g

    def _emit(self, node, op, inputs, **attrs) -> int:
        wid = self.g.add(op, [self._mat(i) for i in inputs], self.shape(node.output[0]),
                         name=node.name or node.output[0], source=_src(node), **attrs)
        self.acts[node.output[0]] = wid
        return wid

    # -- deferred elementwise chains -----------------------------------------------------------
    def _mat(self, name) -> int:
        if name in self.acts:
            return self.acts[name]
        if name not in self.root:
            raise UnsupportedOp(f"value '{name}' was not lowered")
        node = self.producer[name]
        sign = self._probe_sign(name)
        if sign is not None:
            t, zero_at, c = sign
            src = self._mat(self.root[name])
            wid = self.g.add("sign", [src], self.shape(name), name=node.name or name, source=_src(node), t=t,
                             zero_at=zero_at)
            if c != 1.0:  # ±c: a scaled sign; the conv/linear after it takes c into its weights
                ch = self.shape(name)[1]
                wid = self.g.add("affine", [wid], self.shape(name), name=(node.name or name) + ".scale",
                                 source=_src(node), scale=np.full(ch, c, np.float32), bias=np.zeros(ch, np.float32))
        else:
            wid = self._elementwise(node)
        self.acts[name] = wid
        return wid

    def _chain(self, name) -> list:
        root, seen, stack = self.root[name], set(), [name]
        while stack:
            n = stack.pop()
            if n in seen or n == root or self.is_const(n):
                continue
            seen.add(n)
            stack.extend(i for i in self.producer[n].input if i)
        return [nd for nd in self.model.graph.node if nd.output[0] in seen]

    def _chain_fn(self, name, chain):
        """A NumPy function root value -> name's value (the chain as a small onnx.reference model)."""
        from onnx.reference import ReferenceEvaluator

        root = self.root[name]
        used = {i for nd in chain for i in nd.input if i and i != root and self.is_const(i)}
        inits = [numpy_helper.from_array(np.asarray(self.values[i]), i) for i in sorted(used)]
        g = helper.make_graph(list(chain), "chain", [helper.make_tensor_value_info(root, onnx.TensorProto.FLOAT, None)],
                              [helper.make_empty_tensor_value_info(name)], inits)
        m = helper.make_model(g, opset_imports=list(self.model.opset_import))
        ref = ReferenceEvaluator(m, new_ops=REF_OPS)
        return lambda x: np.asarray(ref.run(None, {root: np.asarray(x, np.float32)})[0])

    def _probe_sign(self, name):
        """(thresholds [C], zero_at, c) when the chain's output is c·sign(x - t_ch), else None."""
        root = self.root[name]
        chain = self._chain(name)
        if not any(nd.op_type in SIGNLIKE for nd in chain):
            return None
        shape = self.shape(root)
        if len(shape) < 2 or self.shape(name) != shape:
            return None
        ch = shape[1]
        f = self._chain_fn(name, chain)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 3
        out = f(x)
        if out.shape != x.shape or not np.issubdtype(out.dtype, np.floating):
            return None
        c = float(np.abs(out).max())
        if not c > 0 or not np.all(np.abs(np.abs(out) - c) <= 1e-6 * c):  # NaN fails too
            return None

        def full(v):
            return np.broadcast_to(np.asarray(v, np.float32).reshape((1, ch) + (1,) * (len(shape) - 2)),
                                   shape).copy()

        def positive(v):
            o = f(full(v)).reshape(shape[0], ch, -1)
            pos = o > 0
            if not np.all(pos == pos[:1, :, :1]):
                raise _NotSign
            return pos[0, :, 0]

        try:
            big = np.float32(1e15)
            lo_pos, hi_pos = positive(np.full(ch, -big)), positive(np.full(ch, big))
            if np.any(lo_pos & ~hi_pos):
                raise UnsupportedOp(f"sign-like op at {_src(self.producer[name])} gives -1 for large inputs in some "
                                    "channel; the runtime's sign is increasing")
            lo, hi = np.full(ch, f32_to_ord(-big)), np.full(ch, f32_to_ord(big))
            for _ in range(34):  # bisection on float32 keys: smallest x with output +c
                mid = (lo + hi) // 2
                p = positive(ord_to_f32(mid))
                hi = np.where(p, mid, hi)
                lo = np.where(p, lo, mid)
            below = ord_to_f32(hi - 1)
            at_zero = np.abs(f(full(below)).reshape(shape[0], ch, -1)[0, :, 0]) < 0.5 * c
            t = np.where(at_zero, below, ord_to_f32(hi)).astype(np.float32)
            t = np.where(lo_pos, -np.inf, np.where(~hi_pos, np.inf, t)).astype(np.float32)
        except _NotSign:
            return None
        tt = full(np.where(np.isfinite(t), t, 0))
        tfull = full(t)
        for xs in (x, x + tt, tt):
            o = f(xs)
            want = np.where(xs >= tfull, c, -c)
            if not np.all((np.abs(o - want) <= 1e-6 * c) | ((o == 0) & (xs == tfull))):
                return None
        return t, bool(np.any(at_zero)), c

    def _const_operand(self, node):
        """(activation input, constant input, activation is first) of a binary elementwise node."""
        a, b = node.input[0], node.input[1]
        if self.is_const(a):
            return b, a, False
        return a, b, True

    def _elementwise(self, node) -> int:
        """Lower one deferred elementwise node on its own (its chain was not a sign)."""
        op, out = node.op_type, node.output[0]
        shape = self.shape(out)
        ch = shape[1] if len(shape) >= 2 else 1
        at = _attrs(node)

        def add(wop, x, **attrs):
            return self.g.add(wop, [self._mat(x)], shape, name=node.name or out, source=_src(node), **attrs)

        def affine(x, scale, bias):
            return add("affine", x, scale=np.asarray(scale, np.float32), bias=np.asarray(bias, np.float32))

        x0 = node.input[0]
        if op in ("Identity", "Dropout") or (op == "Cast" and at.get("to") == onnx.TensorProto.FLOAT):
            return self._mat(x0)
        if op == "Relu":
            return add("clamp", x0, lo=0.0, hi=np.inf)
        if op == "Clip":
            if self.opset >= 11:
                lo = float(self.c(node.input[1])) if len(node.input) > 1 and node.input[1] else -np.inf
                hi = float(self.c(node.input[2])) if len(node.input) > 2 and node.input[2] else np.inf
            else:
                lo, hi = float(at.get("min", -np.inf)), float(at.get("max", np.inf))
            return add("clamp", x0, lo=lo, hi=hi)
        if op == "LeakyRelu":
            return add("prelu", x0, slope=np.full(ch, at.get("alpha", 0.01), np.float32))
        if op == "PRelu" and self.is_const(node.input[1]):
            slope = channel_vector(self.c(node.input[1]), shape)
            if slope is not None:
                return add("prelu", x0, slope=slope)
        if op == "Neg":
            return affine(x0, np.full(ch, -1), np.zeros(ch))
        if op in ("Max", "Min") and len(node.input) == 2:
            x, k, _ = self._const_operand(node)
            kv = self.c(k)
            if kv.size == 1:
                v = float(kv.reshape(()))
                return add("clamp", x, lo=v, hi=np.inf) if op == "Max" else add("clamp", x, lo=-np.inf, hi=v)
        if op in ("Add", "Sub", "Mul", "Div") and len(node.input) == 2:
            x, k, first = self._const_operand(node)
            kv = channel_vector(self.c(k), shape)
            if kv is not None and self.shape(x) == shape:
                zeros, ones = np.zeros(ch, np.float32), np.ones(ch, np.float32)
                if op == "Add":
                    return affine(x, ones, kv)
                if op == "Sub":
                    return affine(x, ones, -kv) if first else affine(x, -ones, kv)
                if op == "Mul":
                    return affine(x, kv, zeros)
                if op == "Div" and first:
                    return affine(x, (1 / kv.astype(np.float64)).astype(np.float32), zeros)
        if op == "Quant":
            return self._quant(node)
        if op == "BipolarQuant":  # not probed as a sign (shape did not allow): threshold 0, +1 at 0
            wid = add("sign", x0, t=np.zeros(ch, np.float32), zero_at=False)
            s = float(self.c(node.input[1]).reshape(-1)[0])
            if s != 1.0:
                wid = self.g.add("affine", [wid], shape, name=(node.name or out) + ".scale", source=_src(node),
                                 scale=np.full(ch, s, np.float32), bias=np.zeros(ch, np.float32))
            return wid
        raise UnsupportedOp(f"unsupported ONNX op {op} at node '{node.name or out}' with these operands "
                            f"({', '.join(node.input)}): the runtime has no kernel for it")

    def _quant(self, node) -> int:
        at = _attrs(node)
        out = node.output[0]
        shape = self.shape(out)
        bits = float(self.c(node.input[3]).reshape(-1)[0])
        if bits != int(bits) or not 1 <= bits <= 8:
            raise UnsupportedOp(f"Quant at node '{node.name or out}' has bit width {bits}: only 1..8 bits on "
                                "activations can run in the runtime")
        lo, hi = int_range(at.get("signed", 1), at.get("narrow", 0), int(bits))
        scale = channel_vector(self.c(node.input[1]), shape)
        zero = self.c(node.input[2])
        if scale is None or zero.size != 1 or np.any(scale <= 0):
            raise UnsupportedOp(f"Quant at node '{node.name or out}': only a per-tensor or per-channel positive "
                                "scale and a scalar zero point are supported on activations")
        mode = str(at.get("rounding_mode", "ROUND")).upper()
        return self.g.add("quant", [self._mat(node.input[0])], shape, name=node.name or out, source=_src(node),
                          scale=scale, zero=float(zero.reshape(())), qmin=lo, qmax=hi, rounding=mode, bits=int(bits))

    # -- structural ops ------------------------------------------------------------------------
    def _weights_input(self, x: str, w: np.ndarray, axis: int):
        """(input node, weights): a scaled sign before a conv/linear moves its scale into the weights,
        so the layer reads the sign itself and can be binary."""
        wid = self._mat(x)
        n = self.g[wid]
        if n.op == "affine" and not np.any(n.attrs["bias"]) and self.g[n.inputs[0]].op == "sign":
            s = n.attrs["scale"].reshape([-1 if i == axis else 1 for i in range(w.ndim)])
            return n.inputs[0], (w * s).astype(np.float32)
        return wid, w

    def _add_layer(self, node, op, xid, **attrs) -> None:
        wid = self.g.add(op, [xid], self.shape(node.output[0]), name=node.name or node.output[0], source=_src(node),
                         **attrs)
        self.acts[node.output[0]] = wid

    def _pads(self, node, at, in_hw, k, s, d, out_hw):
        auto = at.get("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            tot = [max((out_hw[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i], 0) for i in range(2)]
            small = [t // 2 for t in tot]
            big = [t - t // 2 for t in tot]
            if auto == "SAME_UPPER":
                return (small[0], small[1], big[0], big[1])
            return (big[0], big[1], small[0], small[1])
        p = [int(v) for v in at.get("pads", [0, 0, 0, 0])] if auto in ("NOTSET", "") else [0, 0, 0, 0]
        if len(p) != 4:
            raise UnsupportedOp(f"{_src(node)}: only 2-D windows are supported")
        return (p[0], p[1], p[2], p[3])

    def _op_Conv(self, node):
        at = _attrs(node)
        x, wname = node.input[0], node.input[1]
        b = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if not self.is_const(wname) or (b is not None and not self.is_const(b)):
            raise UnsupportedOp(f"{_src(node)} has weights computed from the input; only constant weights are "
                                "supported")
        w = self.c(wname).astype(np.float32)
        if w.ndim != 4:
            raise UnsupportedOp(f"{_src(node)}: only 2-D convolutions are supported (weights {w.shape})")
        k = w.shape[2:]
        s = [int(v) for v in at.get("strides", [1, 1])]
        d = [int(v) for v in at.get("dilations", [1, 1])]
        pads = self._pads(node, at, self.shape(x)[2:], k, s, d, self.shape(node.output[0])[2:])
        groups = int(at.get("group", 1))
        xid, w = self._weights_input(x, w, 1) if groups == 1 else (self._mat(x), w)
        self._add_layer(node, "conv", xid, w=w, b=None if b is None else self.c(b).astype(np.float32),
                        stride=tuple(s), pads=pads, dil=tuple(d), groups=groups, clamp=NO_CLAMP, pad_value=0)

    def _linear(self, node, x, w, b):
        if len(self.shape(x)) != 2:
            raise UnsupportedOp(f"{_src(node)} on a {len(self.shape(x))}-D input: only [N, K] inputs are "
                                "supported (flatten first)")
        xid, w = self._weights_input(x, w.astype(np.float32), 1)
        self._add_layer(node, "linear", xid, w=np.ascontiguousarray(w), b=b, clamp=NO_CLAMP)

    def _op_Gemm(self, node):
        at = _attrs(node)
        a, bname = node.input[0], node.input[1]
        if at.get("transA", 0) or not self.is_const(bname) or self.is_const(a):
            raise UnsupportedOp(f"{_src(node)}: only activation x constant weights (transA=0) is supported")
        w = self.c(bname).astype(np.float32)
        w = (w if at.get("transB", 0) else w.T) * np.float32(at.get("alpha", 1.0))
        bias = None
        if len(node.input) > 2 and node.input[2]:
            if not self.is_const(node.input[2]):
                raise UnsupportedOp(f"{_src(node)}: the bias C must be constant")
            cv = np.broadcast_to(self.c(node.input[2]).astype(np.float32), self.shape(node.output[0]))
            if not np.all(cv == cv[:1]):
                raise UnsupportedOp(f"{_src(node)}: a bias that varies along the batch is not supported")
            bias = (cv[0] * np.float32(at.get("beta", 1.0))).astype(np.float32)
        self._linear(node, a, w, bias)

    def _op_MatMul(self, node):
        a, bname = node.input
        if self.is_const(a) or not self.is_const(bname) or self.c(bname).ndim != 2:
            raise UnsupportedOp(f"{_src(node)}: only activation [N, K] x constant [K, O] is supported")
        self._linear(node, a, self.c(bname).T, None)

    def _op_BatchNormalization(self, node):
        at = _attrs(node)
        if at.get("training_mode", 0):
            raise UnsupportedOp(f"{_src(node)} is in training mode: export the model in eval mode")
        x, sc, bi, mean, var = node.input[:5]
        scale = (self.c(sc) / np.sqrt(self.c(var) + np.float32(at.get("epsilon", 1e-5)))).astype(np.float32)
        bias = (self.c(bi) - self.c(mean) * scale).astype(np.float32)
        self._emit(node, "affine", [x], scale=scale, bias=bias)

    def _pool(self, node):
        at = _attrs(node)
        x = node.input[0]
        k = [int(v) for v in at["kernel_shape"]]
        s = [int(v) for v in at.get("strides", [1, 1])]
        if [int(v) for v in at.get("dilations", [1, 1])] != [1, 1]:
            raise UnsupportedOp(f"{_src(node)}: dilated pooling is not supported")
        in_hw, out_hw = self.shape(x)[2:], self.shape(node.output[0])[2:]
        p = self._pads(node, at, in_hw, k, s, [1, 1], out_hw)
        # ceil_mode (or any rounding) shows as a larger output: extra bottom/right padding gives it
        pads = (p[0], p[1], max(p[2], (out_hw[0] - 1) * s[0] + k[0] - in_hw[0] - p[0]),
                max(p[3], (out_hw[1] - 1) * s[1] + k[1] - in_hw[1] - p[1]))
        return x, tuple(k), tuple(s), pads, at

    def _op_MaxPool(self, node):
        if len(node.output) > 1 and node.output[1]:
            raise UnsupportedOp(f"{_src(node)}: the indices output is not supported")
        x, k, s, pads, _ = self._pool(node)
        self._emit(node, "maxpool", [x], kernel=k, stride=s, pads=pads)

    def _op_AveragePool(self, node):
        x, k, s, pads, at = self._pool(node)
        self._emit(node, "avgpool", [x], kernel=k, stride=s, pads=pads,
                   count_include_pad=bool(at.get("count_include_pad", 0)))

    def _op_GlobalAveragePool(self, node):
        self._emit(node, "gap", [node.input[0]])

    def _op_GlobalMaxPool(self, node):
        h, w = self.shape(node.input[0])[2:]
        self._emit(node, "maxpool", [node.input[0]], kernel=(h, w), stride=(1, 1), pads=(0, 0, 0, 0))

    def _op_ReduceMean(self, node):
        at = _attrs(node)
        x = node.input[0]
        axes = at.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.c(node.input[1]).tolist()
        nd = len(self.shape(x))
        if nd != 4 or axes is None or sorted(int(a) % 4 for a in axes) != [2, 3]:
            raise UnsupportedOp(f"{_src(node)} over axes {axes}: only the spatial mean (global average pool) "
                                "is supported")
        wid = self.g.add("gap", [self._mat(x)], self.shape(x)[:2] + (1, 1), name=node.name or node.output[0],
                         source=_src(node))
        if not at.get("keepdims", 1):
            wid = self.g.add("flatten", [wid], self.shape(node.output[0]), name=(node.name or node.output[0]) +
                             ".flatten", source=_src(node))
        self.acts[node.output[0]] = wid

    def _flatten_like(self, node):
        x = node.input[0]
        s_in, s_out = self.shape(x), self.shape(node.output[0])
        if s_in == s_out:
            self.acts[node.output[0]] = self._mat(x)
            return
        if len(s_out) == 2 and s_out[0] == s_in[0]:
            self._emit(node, "flatten", [x])
            return
        if len(s_out) == 4 and len(s_in) == 2 and s_out[2:] == (1, 1) and s_out[:2] == s_in:
            raise UnsupportedOp(f"{_src(node)}: reshape {s_in} -> {s_out} (back to 4-D) is not supported")
        raise UnsupportedOp(f"{_src(node)}: reshape {list(s_in)} -> {list(s_out)}: only flattening to "
                            "[N, features] is supported")

    _op_Flatten = _op_Reshape = _op_Squeeze = _op_Unsqueeze = _flatten_like

    def _op_Transpose(self, node):
        at = _attrs(node)
        s_in = self.shape(node.input[0])
        perm = at.get("perm", list(range(len(s_in)))[::-1])
        moved = [p for p in perm if s_in[p] != 1]
        if moved != sorted(moved):
            raise UnsupportedOp(f"{_src(node)}: transpose {list(perm)} of {list(s_in)} moves data; only transposes "
                                "of size-1 axes are supported")
        self._flatten_like(node)

    def _op_Concat(self, node):
        axis = int(_attrs(node)["axis"]) % len(self.shape(node.output[0]))
        self._emit(node, "cat", [i for i in node.input if i], axis=axis)

    def _op_Softmax(self, node):
        nd = len(self.shape(node.input[0]))
        axis = int(_attrs(node).get("axis", -1 if self.opset >= 13 else 1)) % nd
        if axis != nd - 1:
            raise UnsupportedOp(f"{_src(node)} over axis {axis}: only the last axis is supported")
        self._emit(node, "softmax", [node.input[0]])

    def _op_Add(self, node):
        a, b = node.input[:2]
        if self.shape(a) != self.shape(b):
            raise UnsupportedOp(f"{_src(node)}: broadcasting {list(self.shape(a))} + {list(self.shape(b))} of two "
                                "activations is not supported")
        self._emit(node, "add", [a, b], clamp=NO_CLAMP)

    def _op_Sub(self, node):
        a, b = node.input[:2]
        if self.shape(a) != self.shape(b):
            raise UnsupportedOp(f"{_src(node)}: broadcasting two activations is not supported")
        ch = self.shape(b)[1]
        neg = self.g.add("affine", [self._mat(b)], self.shape(b), name=(node.name or node.output[0]) + ".neg",
                         source=_src(node), scale=np.full(ch, -1, np.float32), bias=np.zeros(ch, np.float32))
        wid = self.g.add("add", [self._mat(a), neg], self.shape(node.output[0]), name=node.name or node.output[0],
                         source=_src(node), clamp=NO_CLAMP)
        self.acts[node.output[0]] = wid


def lower(model, input_name: str, values: dict) -> WGraph:
    return Lowering(model, input_name, values).run()
