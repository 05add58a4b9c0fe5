"""Capture a PyTorch model with torch.export and lower its ATen graph to the working graph.

Three ideas carry the front-end:
  * Everything that depends only on parameters is evaluated here, with PyTorch itself, so weight
    quantizers of any style (sign, scaled sign, STE tricks) arrive as plain constants.
  * Elementwise ops on one activation are deferred: a chain of them is looked at as a whole
    when something structural reads it. If the chain's output is ±1 for every input, it is a
    sign, whatever ops wrote it (sign, where(x >= t, 1, -1), Bi-Real's or ReActNet's STE forms);
    its per-channel threshold is found by probing the chain itself, so it is exact. The same
    probing finds HWGQ's uniform quantizer (-> K-bit conv) and HORQ's residual binarization of
    image patches (im2col -> chain -> matmul with the weights, -> HORQ conv).
  * Every working node remembers the module path and source line that produced it, for the
    report and for errors.
"""
from __future__ import annotations

import copy
import operator
import re

import numpy as np
import torch
from torch.fx.node import map_arg

from edgebnn.ir.dtypes import f32_to_ord, ord_to_f32
from edgebnn.errors import UserError
from edgebnn.passes.graph import NO_CLAMP, WGraph, channel_vector, per_channel

aten = torch.ops.aten


class UnsupportedOp(UserError):
    pass


def _packet(target) -> str:
    if target is operator.getitem:
        return "getitem"
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0]


# Elementwise ops that may appear in a chain on one activation (other operands constant).
ELEMENTWISE = {
    "sign", "where", "ge", "gt", "le", "lt", "eq", "add", "sub", "rsub", "mul", "div", "neg", "abs",
    "clamp", "clamp_min", "clamp_max", "clip", "hardtanh", "relu", "relu6", "leaky_relu", "prelu",
    "detach", "alias", "clone", "contiguous", "_to_copy", "to", "type_as", "lift_fresh_copy",
    "dropout", "pow", "square", "logical_and", "logical_or", "logical_not", "bitwise_and", "bitwise_or",
    "ones_like", "zeros_like", "full_like", "scalar_tensor", "sigmoid", "tanh", "hardsigmoid",
    "floor", "ceil", "round", "sqrt", "reciprocal",
}
IDENTITY = {"detach", "alias", "clone", "contiguous", "_to_copy", "to", "type_as", "lift_fresh_copy", "dropout"}


def _source(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    path = ""
    if stack:
        path = list(stack.values())[-1][0]
        path = re.sub(r"^L__self___?", "", str(path)).replace("_modules['", "").replace("']", "")
    line = ""
    trace = node.meta.get("stack_trace") or ""
    frames = re.findall(r'File "([^"]+)", line (\d+)', trace)
    if frames:
        f, ln = frames[-1]
        line = f"{f.split('/')[-1]}:{ln}"
    return " ".join(p for p in (path or "<model>", f"({line})" if line else "") if p)




class Lowering:
    def __init__(self, ep: torch.export.ExportedProgram):
        self.ep = ep
        self.gm = ep.graph_module
        self.g = WGraph()
        self.consts: dict = {}     # fx node -> torch.Tensor or python value
        self.acts: dict = {}       # fx node -> working node id
        self.root: dict = {}       # deferred fx node -> the materialized fx node its chain starts at
        self.shape: dict = {}      # fx node -> shape
        self.pads: dict = {}       # fx node -> (source fx node, pads t,l,b,r, value): absorbed by conv/pool
        self.patches: dict = {}    # im2col fx node -> its window: the root of a HORQ patch chain

    # -- constants and inputs ------------------------------------------------------------------
    def _placeholder_values(self):
        sig = self.ep.graph_signature
        state = self.ep.state_dict
        consts = getattr(self.ep, "constants", {}) or {}
        out = {}
        for spec in sig.input_specs:
            kind = spec.kind.name
            if kind in ("PARAMETER", "BUFFER"):
                out[spec.arg.name] = state[spec.target] if spec.target in state else consts[spec.target]
            elif kind in ("CONSTANT_TENSOR", "CUSTOM_OBJ"):
                out[spec.arg.name] = consts[spec.target]
        return out

    def _is_const(self, a) -> bool:
        if isinstance(a, torch.fx.Node):
            return a in self.consts
        if isinstance(a, (list, tuple)):
            return all(self._is_const(x) for x in a)
        return True

    def _val(self, a):
        return map_arg(a, lambda n: self.consts[n])

    def _np(self, a) -> np.ndarray:
        v = self.consts[a] if isinstance(a, torch.fx.Node) else a
        if isinstance(v, torch.Tensor):
            return v.detach().to(torch.float32).cpu().numpy()
        return np.asarray(v, np.float32)

    def _acts_of(self, node):
        found = []
        for a in node.all_input_nodes:
            if a not in self.consts and a not in found:
                found.append(a)
        return found

    # -- main loop -----------------------------------------------------------------------------
    def _hetconv_groups(self):
        """edgebnn HetConv2d layers inside an exported program: their forward is traced as a gather
        and grouped convs; keyed by their last node, each becomes one dense conv with HetConv's
        zero pattern (which the HetConv pass then recognises)."""
        groups: dict = {}
        for n in self.gm.graph.nodes:
            stack = (n.meta.get("nn_module_stack") or {}) if n.op == "call_function" else {}
            for path, cls in list(stack.values())[::-1]:
                if str(getattr(cls, "__name__", cls)).endswith("HetConv2d"):
                    groups.setdefault(path, []).append(n)
                    break
        self.het_member, self.het_last = set(), {}
        for path, nodes in groups.items():
            self.het_member.update(nodes)
            self.het_last[nodes[-1]] = (path, nodes)

    def _op_hetconv_group(self, node):
        path, nodes = self.het_last[node]
        clean = re.sub(r"^L__self___?", "", str(path))
        state = self.ep.state_dict
        w3, w1 = (state[f"{clean}.{k}"].detach().numpy() for k in ("w3", "w1"))
        bias = state.get(f"{clean}.bias")
        members = set(nodes)
        inputs = [a for n in nodes for a in n.all_input_nodes if a not in members and a not in self.consts]
        if len(set(inputs)) != 1:
            raise UnsupportedOp(f"HetConv layer '{clean}' at {_source(node)} reads {len(set(inputs))} activations")
        x = inputs[0]
        conv = next(n for n in nodes if _packet(n.target) in ("conv2d", "convolution"))
        stride = [int(v) for v in conv.args[3]]
        o, sub, k, _ = w3.shape
        c = self.shape[x][1]
        part = c // sub
        dense = np.zeros((o, c, k, k), np.float32)
        for j in range(o):
            dense[j, (j % part)::part] = w3[j]
            rest = [ch for ch in range(c) if ch % part != j % part]
            dense[j, rest, k // 2, k // 2] = w1[j]
        self._emit(node, "conv", [x], w=dense, b=None if bias is None else bias.detach().numpy(),
                   stride=tuple(stride), pads=(k // 2,) * 4, dil=(1, 1), groups=1, clamp=NO_CLAMP, pad_value=0)

    def run(self) -> WGraph:
        self._hetconv_groups()
        values = self._placeholder_values()
        user_inputs = [s.arg.name for s in self.ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
        for node in self.gm.graph.nodes:
            if "val" in node.meta and isinstance(node.meta["val"], torch.Tensor):
                self.shape[node] = tuple(int(d) for d in node.meta["val"].shape)
            if node.op == "placeholder":
                if node.name in values:
                    self.consts[node] = values[node.name]
                elif node.name in user_inputs:
                    shape = self.shape[node]
                    self.acts[node] = self.g.add("input", [], shape, name="input" if len(user_inputs) == 1 else node.name)
                else:
                    raise UnsupportedOp(f"input '{node.name}' of kind the converter does not know")
            elif node.op == "call_function":
                self._call(node)
            elif node.op == "output":
                outs = node.args[0]
                outs = outs if isinstance(outs, (list, tuple)) else [outs]
                for o in outs:
                    if isinstance(o, torch.fx.Node) and o not in self.consts:
                        self.g.outputs.append(self._mat(o))
        if not self.g.outputs:
            raise UserError("the model has no output that depends on its input")
        return self.g

    def _call(self, node):
        if node in self.het_member:
            if node in self.het_last:
                self._op_hetconv_group(node)
            return
        name = _packet(node.target)
        if name.startswith("_assert") or name in ("sym_constrain_range", "sym_constrain_range_for_size"):
            return  # export's shape/dtype guards: nothing to compute
        if name in ("expand_as", "expand") and self._is_const(node.args[0]):
            # a constant broadcast to the activation's (static) shape is still a constant
            self.consts[node] = self.consts[node.args[0]].expand(self.shape[node])
            return
        if self._is_const(list(node.args)) and self._is_const(list(node.kwargs.values())):
            with torch.no_grad():
                self.consts[node] = node.target(*self._val(node.args), **self._val(node.kwargs))
            return
        acts = self._acts_of(node)
        roots = {self.root.get(a, a) for a in acts}
        if (name in ELEMENTWISE or self._is_channel_mean(node)) and len(roots) == 1:
            self.root[node] = roots.pop()
            return
        handler = getattr(self, "_op_" + name, None)
        if handler is None:
            raise UnsupportedOp(f"unsupported op aten.{name} at {_source(node)}: the runtime has no kernel for it; "
                                "replace it, or keep that part of the model outside the converted graph")
        handler(node)

    def _is_channel_mean(self, node) -> bool:
        """mean over dim 1 with keepdim: a per-position reduction that stays in a chain (XNOR-Net's
        mean_c |x|, HORQ's per-patch mean |r|); materialized alone it becomes CHANNEL_MEAN."""
        if _packet(node.target) != "mean" or len(node.args) < 2:
            return False
        x, dims = node.args[:2]
        keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        nd = len(self.shape.get(x, ()))
        return bool(keep) and nd >= 2 and [int(d) % nd for d in dims] == [1]

    # -- materializing deferred elementwise chains ---------------------------------------------
    def _mat(self, node) -> int:
        if node in self.acts:
            return self.acts[node]
        if node in self.pads:
            raise UnsupportedOp(f"padding at {_source(node)} feeds something other than a conv or pool")
        if node in self.patches:
            raise UnsupportedOp(f"im2col at {_source(node)}: patches are supported only as the input of a HORQ "
                                "convolution (residual binarization of each patch, then a matmul with the weights)")
        if node not in self.root:
            raise UnsupportedOp(f"value '{node.name}' at {_source(node)} was not lowered")
        sign = self._probe_sign(node)
        if sign is not None:
            t, zero_at = sign
            src = self._mat(self.root[node])
            wid = self.g.add("sign", [src], self.shape[node], name=node.name, source=_source(node), t=t,
                             zero_at=zero_at)
        else:
            kbit = self._probe_kbit(node)
            if kbit is not None:
                bits, step = kbit
                wid = self.g.add("kquant", [self._mat(self.root[node])], self.shape[node], name=node.name,
                                 source=_source(node), bits=bits, step=step)
            else:
                wid = self._elementwise(node)
        self.acts[node] = wid
        return wid

    def _probe_kbit(self, node):
        """(bits, step) when the chain is HWGQ's uniform quantizer step·clamp(floor(x/step + 0.5), 0, 2^k - 1)
        exactly as the runtime's K-bit conv computes it (float32), else None."""
        chain = self._chain(node)
        if not any(_packet(n.target) in ("floor", "round") for n in chain):
            return None
        root = self.root[node]
        shape = self.shape.get(root)
        if shape is None or self.shape.get(node) != shape:
            return None
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(shape, generator=gen) * 4
        out = self._eval_chain(node, chain, x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape or not out.is_floating_point():
            return None
        top = float(self._eval_chain(node, chain, torch.full(shape, 1e6)).max())
        n = int(np.prod(shape))
        levels = torch.unique(self._eval_chain(node, chain, torch.linspace(-2 * top, 2 * top, n).reshape(shape)))
        positive = levels[levels > 0]
        if positive.numel() == 0:
            return None
        step = np.float32(positive.min())
        bits = int(round(np.log2(top / step + 1)))
        if not 1 <= bits <= 8:
            return None
        qmax = np.float32(2 ** bits - 1)

        def runtime(v):
            q = np.floor(v.astype(np.float32) / step + np.float32(0.5)).astype(np.float32)
            return (step * np.clip(q, 0, qmax)).astype(np.float32)

        mids = (torch.arange(int(qmax) + 1, dtype=torch.float32) + 0.5) * float(step)
        probes = [x, x * 0.1, torch.nextafter(mids, torch.tensor(np.inf)), torch.nextafter(mids, torch.tensor(-np.inf)),
                  mids]
        for p in probes:
            p = p.flatten().repeat(int(np.prod(shape)) // p.numel() + 1)[:int(np.prod(shape))].reshape(shape)
            got = self._eval_chain(node, chain, p).numpy()
            if not np.array_equal(got, runtime(p.numpy())):
                return None
        return bits, float(step)

    def _chain(self, node):
        """The deferred nodes between node's root and node, in graph order."""
        root, seen, stack = self.root[node], set(), [node]
        while stack:
            n = stack.pop()
            if n in seen or n is root or n in self.consts:
                continue
            seen.add(n)
            stack.extend(n.all_input_nodes)
        return [n for n in self.gm.graph.nodes if n in seen]

    def _eval_chain(self, node, chain, x: torch.Tensor) -> torch.Tensor:
        env = {self.root[node]: x}

        def look(n):
            return env[n] if n in env else self.consts[n]

        with torch.no_grad():
            for n in chain:
                env[n] = n.target(*map_arg(n.args, look), **map_arg(n.kwargs, look))
        return env[node]

    def _probe_sign(self, node):
        """(thresholds [C], zero_at) when the chain's output is sign(x - t_c), else None."""
        root = self.root[node]
        chain = self._chain(node)
        if not any(_packet(n.target) in ("sign", "where", "ge", "gt", "lt", "le") for n in chain):
            return None
        shape = self.shape.get(root)
        if shape is None or len(shape) < 2 or self.shape.get(node) != shape:
            return None
        c = shape[1]
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=gen) * 3
        out = self._eval_chain(node, chain, x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape or not out.is_floating_point():
            return None
        if not torch.all((out.abs() - 1).abs() <= 1e-5):  # NaN fails too
            return None

        def positive(v: np.ndarray) -> np.ndarray:
            full = torch.from_numpy(np.asarray(v, np.float32)).view(1, c, *([1] * (len(shape) - 2))).expand(shape)
            o = self._eval_chain(node, chain, full.contiguous()).reshape(shape[0], c, -1)
            pos = o > 0.5
            if not torch.all(pos == pos[:1, :, :1]):
                raise _NotSign
            return pos[0, :, 0].numpy()

        try:
            # Search within ±1e15, not ±FLT_MAX: STE polynomials (x*x) overflow to inf - inf = NaN
            # beyond ~1e19. A threshold outside that range acts as ±inf on any real activation.
            big = np.float32(1e15)
            lo_pos, hi_pos = positive(np.full(c, -big)), positive(np.full(c, big))
            if np.any(lo_pos & ~hi_pos):
                raise UnsupportedOp(f"sign-like op at {_source(node)} gives -1 for large inputs in some channel; "
                                    "the runtime's sign is increasing")
            lo, hi = np.full(c, f32_to_ord(-big)), np.full(c, f32_to_ord(big))
            for _ in range(34):  # bisection on float32 keys: smallest x with output +1
                mid = (lo + hi) // 2
                p = positive(ord_to_f32(mid))
                hi = np.where(p, mid, hi)
                lo = np.where(p, lo, mid)
            # Where the source gives 0 just below the first +1 (torch.sign at 0), put the
            # threshold there: the packed format has no 0, and +1 at 0 is edgebnn's convention.
            below = ord_to_f32(hi - 1)
            full = torch.from_numpy(below).view(1, c, *([1] * (len(shape) - 2))).expand(shape).contiguous()
            at_zero = (self._eval_chain(node, chain, full).reshape(shape[0], c, -1)[0, :, 0].abs() < 0.5).numpy()
            t = np.where(at_zero, below, ord_to_f32(hi)).astype(np.float32)
            t = np.where(lo_pos, -np.inf, np.where(~hi_pos, np.inf, t)).astype(np.float32)
        except _NotSign:
            return None
        # verify on random data and right at the thresholds
        tt = torch.from_numpy(np.where(np.isfinite(t), t, 0)).view(1, c, *([1] * (len(shape) - 2)))
        for xs in (x, x + tt, tt.expand(shape).contiguous()):
            o = self._eval_chain(node, chain, xs)
            want = torch.where(xs >= torch.from_numpy(t).view(tt.shape), 1.0, -1.0)
            ok = ((o - want).abs() <= 1e-5) | ((o == 0) & (xs == torch.from_numpy(t).view(tt.shape)))
            if not torch.all(ok):
                return None
        return t, bool(np.any(at_zero))

    def _elementwise(self, node) -> int:
        """Lower one deferred elementwise node on its own (the chain was not a sign)."""
        name = _packet(node.target)
        src = _source(node)
        args = list(node.args)
        acts = self._acts_of(node)
        shape = self.shape[node]
        ch = shape[1] if len(shape) >= 2 else 1

        def add(op, x, **attrs):
            return self.g.add(op, [self._mat(x)], shape, name=node.name, source=src, **attrs)

        if name in IDENTITY:
            return self._mat(args[0])
        if name == "relu":
            return add("clamp", args[0], lo=0.0, hi=np.inf)
        if name in ("hardtanh", "clamp", "clip"):
            lo = args[1] if len(args) > 1 and args[1] is not None else node.kwargs.get("min", -np.inf)
            hi = args[2] if len(args) > 2 and args[2] is not None else node.kwargs.get("max", np.inf)
            if name == "hardtanh" and len(args) == 1:
                lo, hi = -1.0, 1.0
            return add("clamp", args[0], lo=float(-np.inf if lo is None else lo), hi=float(np.inf if hi is None else hi))
        if name == "relu6":
            return add("clamp", args[0], lo=0.0, hi=6.0)
        if name == "clamp_min":
            return add("clamp", args[0], lo=float(args[1]), hi=np.inf)
        if name == "clamp_max":
            return add("clamp", args[0], lo=-np.inf, hi=float(args[1]))
        if name == "leaky_relu":
            slope = args[1] if len(args) > 1 else 0.01
            return add("prelu", args[0], slope=per_channel(slope, ch, "leaky_relu slope"))
        if name == "prelu" and len(acts) == 1 and not self._is_const(args[0]):
            return add("prelu", args[0], slope=per_channel(self._np(args[1]), ch, "prelu slope"))
        if name == "abs":
            return add("abs", args[0])
        if name == "mean":  # a channel mean (see _is_channel_mean) read outside its chain
            return add("cmean", args[0])
        if name == "neg":
            return add("affine", args[0], scale=np.full(ch, -1, np.float32), bias=np.zeros(ch, np.float32))
        if name in ("add", "sub", "mul", "div", "rsub") and len(acts) == 1:
            xi = 0 if not self._is_const(args[0]) else 1
            x, k = args[xi], args[1 - xi]
            alpha = node.kwargs.get("alpha", args[2] if len(args) > 2 else 1)
            kv = channel_vector(self._np(k), shape)
            if kv is None:
                raise UnsupportedOp(f"aten.{name} at {src} with a constant of shape {tuple(self._np(k).shape)} that "
                                    "is not one value per channel")
            kv = per_channel(kv, ch, f"aten.{name} constant")
            one, zero = np.ones(ch, np.float32), np.zeros(ch, np.float32)
            if name == "add":
                return add("affine", x, scale=one, bias=kv * alpha)
            if name == "sub":
                if xi == 0:
                    return add("affine", x, scale=one, bias=-kv * alpha)
                return add("affine", x, scale=-one * alpha, bias=kv)
            if name == "rsub":
                return add("affine", x, scale=-one * alpha, bias=kv)
            if name == "mul":
                return add("affine", x, scale=kv, bias=zero)
            if name == "div" and xi == 0:
                return add("affine", x, scale=(1.0 / kv).astype(np.float32), bias=zero)
        if name == "where":
            prelu = self._match_prelu(node)
            if prelu is not None:
                x, slope = prelu
                return add("prelu", x, slope=per_channel(slope, ch, "prelu slope"))
        raise UnsupportedOp(f"unsupported elementwise op aten.{name} at {src}: it is neither a sign, an affine "
                            "per-channel op nor a ReLU/clamp/PReLU")

    def _match_prelu(self, node):
        """where(z >= 0, z, slope * z) -> (z, slope)."""
        cond, a, b = node.args[:3]
        if not (isinstance(cond, torch.fx.Node) and _packet(cond.target) in ("ge", "gt")):
            return None
        z = cond.args[0]
        if cond.args[1] != 0 or a is not z or not isinstance(b, torch.fx.Node) or _packet(b.target) != "mul":
            return None
        p, q = b.args[:2]
        if p is z and self._is_const(q):
            return z, self._np(q)
        if q is z and self._is_const(p):
            return z, self._np(p)
        return None

    # -- structural ops ------------------------------------------------------------------------
    def _emit(self, node, op, inputs, **attrs) -> int:
        wid = self.g.add(op, [self._mat(i) for i in inputs], self.shape[node], name=node.name,
                         source=_source(node), **attrs)
        self.acts[node] = wid
        return wid

    def _conv_input(self, x):
        """(fx input, extra pads, pad value) looking through an explicit pad."""
        if x in self.pads:
            src, pads, value = self.pads[x]
            return src, pads, value
        return x, (0, 0, 0, 0), 0.0

    def _op_conv2d(self, node, transposed=False):
        a = list(node.args) + [None] * 7
        x, w, b = a[0], a[1], a[2]
        stride = a[3] or [1, 1]
        padding = a[4] if a[4] is not None else [0, 0]
        dil = a[5] or [1, 1]
        groups = a[6] or 1
        self._conv(node, x, w, b, stride, padding, dil, groups)

    def _op_convolution(self, node):
        x, w, b, stride, padding, dil, transposed, _, groups = node.args[:9]
        if transposed:
            raise UnsupportedOp(f"transposed convolution at {_source(node)} is not supported")
        self._conv(node, x, w, b, stride, padding, dil, groups)

    def _conv(self, node, x, w, b, stride, padding, dil, groups):
        if not self._is_const(w) or (b is not None and not self._is_const(b)):
            raise UnsupportedOp(f"conv at {_source(node)} has weights computed from the input; only constant "
                                "(parameter-derived) weights are supported")
        wn = self._np(w)
        if wn.ndim != 4:
            raise UnsupportedOp(f"conv at {_source(node)}: only 2-D convolutions are supported (weights {wn.shape})")
        stride, dil = [int(s) for s in stride], [int(d) for d in dil]
        if isinstance(padding, str):
            if padding == "valid":
                padding = [0, 0]
            else:  # PyTorch 'same': total = dil*(k-1), the extra on the bottom/right
                tot = [dil[i] * (wn.shape[2 + i] - 1) for i in range(2)]
                padding = None
                pads = (tot[0] // 2, tot[1] // 2, tot[0] - tot[0] // 2, tot[1] - tot[1] // 2)
        if padding is not None:
            p = [int(v) for v in padding]
            p = p * 2 if len(p) == 1 else p
            pads = (p[0], p[1], p[0], p[1])
        src, extra, value = self._conv_input(x)
        pads = tuple(int(u + v) for u, v in zip(pads, extra))
        if value not in (0.0, 1.0):
            raise UnsupportedOp(f"conv at {_source(node)} reads an input padded with {value}: only 0 and 1 are "
                                "supported")
        self._emit(node, "conv", [src], w=wn, b=None if b is None else self._np(b), stride=tuple(stride),
                   pads=pads, dil=tuple(dil), groups=int(groups), clamp=NO_CLAMP, pad_value=int(value))

    def _op_im2col(self, node):
        x, kernel, dilation, padding, stride = node.args[:5]
        self.patches[node] = dict(x=x, kernel=[int(v) for v in kernel], dil=[int(v) for v in dilation],
                                  pad=[int(v) for v in padding], stride=[int(v) for v in stride])

    def _horq_order(self, node, dim: int) -> int | None:
        """K when the deferred chain ending at node is order-K HORQ residual binarization of its
        root (reduced over `dim`), probed against the definition; else None."""
        if node not in self.root:
            return None
        chain, root = self._chain(node), self.root[node]
        shape = self.shape.get(root)
        if not shape or self.shape.get(node) != shape:
            return None
        r = torch.randn(shape, generator=torch.Generator().manual_seed(2)) * 2
        got = self._eval_chain(node, chain, r)
        for order in range(1, 9):
            want, res = torch.zeros_like(r), r
            for _ in range(order):
                h = torch.where(res >= 0, 1.0, -1.0)
                beta = res.abs().mean(dim=dim, keepdim=True)
                want, res = want + beta * h, res - beta * h
            if torch.allclose(got, want, rtol=1e-5, atol=1e-6):
                return order
        return None

    def _op_matmul(self, node):
        a, b = node.args[:2]
        if self._is_const(a) and b in self.root and self.root[b] in self.patches:  # HORQ conv: W @ approx(patches)
            win = self.patches[self.root[b]]
            order = self._horq_order(b, 1)
            if order is None:
                raise UnsupportedOp(f"matmul at {_source(node)} of weights with image patches that are not a HORQ "
                                    "residual binarization")
            x = win["x"]
            n, c, h, w = self.shape[x]
            kh, kw = win["kernel"]
            oh = (h + 2 * win["pad"][0] - win["dil"][0] * (kh - 1) - 1) // win["stride"][0] + 1
            ow = (w + 2 * win["pad"][1] - win["dil"][1] * (kw - 1) - 1) // win["stride"][1] + 1
            wn = self._np(a)
            o = wn.shape[0]
            self.shape[node] = (n, o, oh, ow)  # the view after it is then a no-op
            p = win["pad"]
            self._emit(node, "horq", [x], w=wn.reshape(o, c, kh, kw), order=order, stride=tuple(win["stride"]),
                       pads=(p[0], p[1], p[0], p[1]), dil=tuple(win["dil"]), pad_value=0.0, clamp=NO_CLAMP)
            return
        if self._is_const(b) and len(self.shape.get(a, ())) == 2:
            order = self._horq_order(a, 1)
            w = np.ascontiguousarray(self._np(b).T)
            if order is not None:  # HORQ linear: approx(x) @ W^T
                self._emit(node, "horq", [self.root[a]], w=w, order=order, clamp=NO_CLAMP)
            else:
                self._emit(node, "linear", [a], w=w, b=None, clamp=NO_CLAMP)
            return
        raise UnsupportedOp(f"matmul at {_source(node)}: only an activation times constant weights is supported")

    _op_mm = _op_matmul

    def _op_linear(self, node):
        x, w = node.args[:2]
        b = node.args[2] if len(node.args) > 2 else None
        if not self._is_const(w):
            raise UnsupportedOp(f"linear at {_source(node)} has weights computed from the input")
        if len(self.shape[x]) != 2:
            raise UnsupportedOp(f"linear at {_source(node)} on a {len(self.shape[x])}-D input: flatten first")
        self._emit(node, "linear", [x], w=self._np(w), b=None if b is None else self._np(b), clamp=NO_CLAMP)

    def _op_addmm(self, node):
        b, x, wt = node.args[:3]
        self._emit(node, "linear", [x], w=np.ascontiguousarray(self._np(wt).T), b=self._np(b), clamp=NO_CLAMP)

    def _bn(self, node, x, w, b, mean, var, eps):
        ch = self.shape[x][1]
        mean, var = self._np(mean), self._np(var)
        w = np.ones(ch, np.float32) if w is None else self._np(w)
        b = np.zeros(ch, np.float32) if b is None else self._np(b)
        scale = (w / np.sqrt(var + np.float32(eps))).astype(np.float32)
        self._emit(node, "affine", [x], scale=scale, bias=(b - mean * scale).astype(np.float32))

    def _op_batch_norm(self, node):
        x, w, b, mean, var, training, _, eps = node.args[:8]
        if training:
            raise UnsupportedOp(f"batch norm at {_source(node)} is in training mode: call model.eval() first")
        self._bn(node, x, w, b, mean, var, eps)

    def _op__native_batch_norm_legit_no_training(self, node):
        x, w, b, mean, var, _, eps = node.args[:7]
        self._bn(node, x, w, b, mean, var, eps)

    def _op_getitem(self, node):
        src, i = node.args
        if src in self.acts and i == 0:
            self.acts[node] = self.acts[src]
        else:
            raise UnsupportedOp(f"tuple output {i} of '{src.name}' at {_source(node)} is not supported")

    def _pool_args(self, node, k, s, p, ceil_mode, what):
        k = [int(v) for v in (k if isinstance(k, (list, tuple)) else [k, k])]
        k = k * 2 if len(k) == 1 else k
        s = [int(v) for v in (s if s else k)]
        s = s * 2 if len(s) == 1 else s
        p = [int(v) for v in (p if isinstance(p, (list, tuple)) else [p, p])]
        p = p * 2 if len(p) == 1 else p
        pads = (p[0], p[1], p[0], p[1])
        if ceil_mode:
            h, w = self.shape[node.args[0]][2:]
            oh, ow = self.shape[node][2:]
            # extra bottom/right padding that gives the ceil_mode output size
            pads = (p[0], p[1], max(p[0], (oh - 1) * s[0] + k[0] - h - p[0]), max(p[1], (ow - 1) * s[1] + k[1] - w - p[1]))
        return tuple(k), tuple(s), pads

    def _op_max_pool2d(self, node):
        a = list(node.args) + [None] * 6
        if a[4] not in (None, 1, [1, 1], (1, 1)):
            raise UnsupportedOp(f"dilated max pool at {_source(node)} is not supported")
        k, s, pads = self._pool_args(node, a[1], a[2], a[3] or 0, bool(a[5]), "max pool")
        self._emit(node, "maxpool", [a[0]], kernel=k, stride=s, pads=pads)

    _op_max_pool2d_with_indices = _op_max_pool2d

    def _op_avg_pool2d(self, node):
        a = list(node.args) + [None] * 7
        if a[6] is not None:
            raise UnsupportedOp(f"avg pool with divisor_override at {_source(node)} is not supported")
        k, s, pads = self._pool_args(node, a[1], a[2], a[3] or 0, bool(a[4]), "avg pool")
        cip = True if a[5] is None else bool(a[5])
        self._emit(node, "avgpool", [a[0]], kernel=k, stride=s, pads=pads, count_include_pad=cip)

    def _op_adaptive_avg_pool2d(self, node):
        x, size = node.args[:2]
        if [int(v) for v in size] != [1, 1]:
            raise UnsupportedOp(f"adaptive avg pool to {list(size)} at {_source(node)}: only output size 1 is supported")
        self._emit(node, "gap", [x])

    def _op_mean(self, node):
        x, dims = node.args[:2]
        keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        nd = len(self.shape[x])
        if keep and [d % nd for d in dims] == [1]:  # mean over channels (XNOR-Net's mean_c |x|)
            self._emit(node, "cmean", [x])
            return
        if nd != 4 or sorted(d % 4 for d in dims) != [2, 3]:
            raise UnsupportedOp(f"mean over {list(dims)} at {_source(node)}: only the spatial mean (global average "
                                "pool) is supported")
        wid = self.g.add("gap", [self._mat(x)], self.shape[x][:2] + (1, 1), name=node.name, source=_source(node))
        if not keep:
            wid = self.g.add("flatten", [wid], self.shape[node], name=node.name + ".flatten", source=_source(node))
        self.acts[node] = wid

    def _flatten_like(self, node, x):
        s_in, s_out = self.shape[x], self.shape[node]
        if s_in == s_out:
            self.acts[node] = self._mat(x)
            return
        if len(s_out) == 2 and s_out[0] == s_in[0]:
            self._emit(node, "flatten", [x])
            return
        raise UnsupportedOp(f"reshape {s_in} -> {s_out} at {_source(node)}: only flattening to [N, features] "
                            "is supported")

    def _op_flatten(self, node):
        self._flatten_like(node, node.args[0])

    def _op_view(self, node):
        self._flatten_like(node, node.args[0])

    _op_reshape = _op_view
    _op__unsafe_view = _op_view

    def _op_squeeze(self, node):
        self._flatten_like(node, node.args[0])

    def _op_add(self, node):
        a, b = node.args[:2]
        alpha = node.kwargs.get("alpha", 1)
        if alpha != 1 or self.shape[a] != self.shape[b]:
            raise UnsupportedOp(f"add at {_source(node)} with alpha={alpha} or broadcasting {self.shape[a]} + "
                                f"{self.shape[b]} is not supported")
        self._emit(node, "add", [a, b], clamp=NO_CLAMP)

    def _op_mul(self, node):
        a, b = node.args[:2]
        sa, sb = self.shape[a], self.shape[b]
        if sa != self.shape[node]:
            a, b, sa, sb = b, a, sb, sa
        if sa != self.shape[node] or len(sb) != len(sa) or (sb != sa and (sb[1] != 1 or sb[0] != sa[0]
                                                                           or sb[2:] != sa[2:])):
            raise UnsupportedOp(f"mul at {_source(node)} of {sa} by {sb}: only equal shapes or a factor per "
                                "position (channel dim 1) are supported")
        self._emit(node, "mul", [a, b])

    def _op_cat(self, node):
        xs = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        nd = len(self.shape[node])
        self._emit(node, "cat", list(xs), axis=int(dim) % nd)

    def _op__softmax(self, node):
        x, dim = node.args[:2]
        if int(dim) % len(self.shape[x]) != len(self.shape[x]) - 1:
            raise UnsupportedOp(f"softmax over dim {dim} at {_source(node)}: only the last dim is supported")
        self._emit(node, "softmax", [x])

    _op_softmax = _op__softmax

    def _op_pad(self, node):
        x, pad = node.args[:2]
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value", 0.0)
        if mode != "constant" or len(pad) != 4:
            raise UnsupportedOp(f"pad at {_source(node)}: only constant 2-D padding is supported")
        l, r, t, b = (int(v) for v in pad)
        self.pads[node] = (x, (t, l, b, r), float(value or 0.0))

    def _op_constant_pad_nd(self, node):
        x, pad = node.args[:2]
        value = node.args[2] if len(node.args) > 2 else 0.0
        if len(pad) != 4:
            raise UnsupportedOp(f"pad at {_source(node)}: only 2-D padding is supported")
        l, r, t, b = (int(v) for v in pad)
        self.pads[node] = (x, (t, l, b, r), float(value))


class _NotSign(Exception):
    pass



def _dense_hetconv(model: torch.nn.Module) -> torch.nn.Module:
    """A copy whose edgebnn HetConv2d layers are dense convs with the HetConv zero pattern.

    Their forward is a gather + grouped conv (fast in PyTorch); the dense form carries the same
    numbers in one conv, which the HetConv pass recognises by its zero pattern.
    """
    try:
        from edgebnn.nn.hetconv import HetConv2d
    except ImportError:
        return model
    if not any(isinstance(m, HetConv2d) for m in model.modules()):
        return model
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for key, child in list(parent.named_children()):
            if isinstance(child, HetConv2d):
                conv = torch.nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                                       child.padding, bias=child.bias is not None)
                with torch.no_grad():
                    conv.weight.copy_(child.dense_weight())
                    if child.bias is not None:
                        conv.bias.copy_(child.bias)
                setattr(parent, key, conv)
    return model


def export(model, example: torch.Tensor) -> torch.export.ExportedProgram:
    """torch.export the model, with edgebnn's HetConv layers as the dense convs they equal."""
    if isinstance(model, torch.export.ExportedProgram):
        return model
    if isinstance(model, torch.jit.ScriptModule):
        try:
            import logging

            from torch._export.converter import TS2EPConverter
            # it logs a warning per specialised input dim, which is the point here: quiet it
            logging.getLogger("torch._export").setLevel(logging.ERROR)
            return TS2EPConverter(model, (example,)).convert()
        except Exception as e:
            raise UserError(f"cannot convert this TorchScript model to torch.export ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}); export the eager module instead") from None
    model = _dense_hetconv(model.eval())
    try:
        with torch.no_grad():
            return torch.export.export(model, (example,))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"torch.export failed on this model: {first}") from None


def lower(ep: torch.export.ExportedProgram) -> WGraph:
    """The working graph of an exported program (shapes come from the program's own metadata)."""
    return Lowering(ep).run()
