"""Post-training int8: rewrite a packed graph's float layers to int8 using calibration data.

Works on the emitted graph (NHWC, after every pass), so every front-end gets it. The float
graph runs in the C runtime on the calibration samples with its activations as extra outputs;
their ranges give each tensor's int8 scale and zero point. Then:

  - conv, depthwise and fully connected layers with float inputs become int8 (per-channel
    symmetric weights, int32 bias, TFLite's requantization), unless kept in float by name or
    because quantizing that layer alone costs more than `tolerance` relative error;
  - pools, reshapes, global average pools and adds follow when their inputs are already int8
    (so int8 runs stay int8 without conversions), and a sign before a binary layer reads the
    int8 codes directly (thresholds moved to code units);
  - QUANTIZE / DEQUANTIZE sit at the borders between int8 and float; the graph still takes and
    returns float. Tensors that were int8 in the source (TFLite, QONNX) keep their own scales.

Each layer's error is measured twice on the calibration data: alone (only that layer int8,
fed the float input quantized) and in the final model (everything before it quantized too).
"""
from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import UserError
from ..ir.dtypes import DType
from ..ir.graph import Graph, Op, Quant, Tensor
from ..ir.ops import Attr, OpType
from .numerics import (activation_qparams, code_thresholds, dequantize_values, quantize_bias,
                       quantize_weights, source_grid_scale, weight_scales)

HEAVY = {OpType.CONV2D: 0, OpType.DEPTHWISE_CONV2D: 2, OpType.FULLY_CONNECTED: 0}  # -> weight channel axis
# int8 in, int8 out with the input's scale and zero point (TFLite requires them equal)
PASSTHROUGH = {OpType.MAX_POOL2D, OpType.AVG_POOL2D, OpType.RESHAPE, OpType.TRANSPOSE, OpType.CHANNEL_SHUFFLE}
METHODS = ("minmax", "percentile", "mse")
_BINS = 2048

Progress = Callable[[str, int, int], None]


@dataclass
class LayerInt8:
    name: str
    op: str
    dtype: str                         # int8 or fp32
    error: float | None = None         # relative RMS error vs float, in the final model
    error_alone: float | None = None   # the same with only this layer int8
    why_float: str = ""


@dataclass
class Int8Result:
    graph: Graph
    layers: list[LayerInt8] = field(default_factory=list)
    samples: int = 0
    method: str = "minmax"
    notes: list[str] = field(default_factory=list)


# ---- running the float graph with its activations as outputs -----------------------------------

def _runtime(graph: Graph):
    from ..format.writer import to_bytes
    from ..runtime import Runtime
    return Runtime(to_bytes(graph))


def _with_outputs(graph: Graph, extra: list[int]) -> Graph:
    g = graph.copy()
    g.outputs = list(graph.outputs) + [t for t in dict.fromkeys(extra) if t not in graph.outputs]
    return g


def _batches(graph: Graph, extra: list[int], samples: np.ndarray, progress: Progress | None, stage: str):
    """Yields {tensor index: value} for the extra tensors, one batch of the model's size at a time."""
    # a graph input cannot be an output: its value is the batch itself (only ranges use it,
    # where the layout does not matter)
    g = _with_outputs(graph, [t for t in extra if t not in graph.inputs])
    rt = _runtime(g)
    pos = {t: i for i, t in enumerate(g.outputs)}
    b = rt.inputs[0].shape[0]
    total = len(samples)
    for k in range(0, total, b):
        x = samples[k:k + b]
        out = rt.run(x)
        out = out if isinstance(out, tuple) else (out,)
        if progress:
            progress(stage, min(k + b, total), total)
        yield {t: (x if t in graph.inputs else out[pos[t]]) for t in extra}


def input_spec(graph: Graph):
    """(shape, layout) of the model's input as users feed it."""
    rt = _runtime(graph)
    if len(rt.inputs) != 1:
        raise UserError(f"int8 calibration feeds single-input models; this one has {len(rt.inputs)} inputs")
    return rt.inputs[0].shape, rt.inputs[0].layout


# ---- ranges ----------------------------------------------------------------------------------------

def _choose_range(hist: np.ndarray, lo: float, hi: float, method: str, percentile: float) -> tuple[float, float]:
    edges = np.linspace(lo, hi, len(hist) + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    if method == "percentile":
        cdf = np.cumsum(hist) / max(1, hist.sum())
        a = edges[min(len(hist) - 1, int(np.searchsorted(cdf, 1 - percentile / 100)))]
        b = edges[min(len(hist), int(np.searchsorted(cdf, percentile / 100)) + 1)]
        return float(min(a, 0.0) if lo >= 0 else a), float(b)
    # mse: shrink the range toward zero, keep the clip that quantizes the histogram best
    best, best_err = (lo, hi), np.inf
    for f in np.linspace(1.0, 0.2, 33):
        a, b = lo * f, hi * f
        s, zp = activation_qparams(a, b)
        q = np.clip(np.floor(centers / s + 0.5) + zp, -128, 127)
        err = float(np.sum(hist * (centers - (q - zp) * s) ** 2))
        if err < best_err:
            best, best_err = (a, b), err
    return float(best[0]), float(best[1])


def observe_ranges(graph: Graph, tensors: list[int], samples: np.ndarray, method: str = "minmax",
                   percentile: float = 99.99, progress: Progress | None = None) -> dict[int, tuple[float, float]]:
    """[lo, hi] of each tensor over the samples: min/max, or clipped by a percentile or by MSE."""
    lo = {t: np.inf for t in tensors}
    hi = {t: -np.inf for t in tensors}
    for vals in _batches(graph, tensors, samples, progress, "calibrating"):
        for t, a in vals.items():
            lo[t] = min(lo[t], float(a.min()))
            hi[t] = max(hi[t], float(a.max()))
    if method == "minmax":
        return {t: (lo[t], hi[t]) for t in tensors}
    hist = {t: np.zeros(_BINS, np.int64) for t in tensors}
    for vals in _batches(graph, tensors, samples, progress, f"histograms ({method})"):
        for t, a in vals.items():
            if hi[t] > lo[t]:
                hist[t] += np.histogram(a, _BINS, (lo[t], hi[t]))[0]
    return {t: (_choose_range(hist[t], lo[t], hi[t], method, percentile) if hi[t] > lo[t] else (lo[t], hi[t]))
            for t in tensors}


def _quant(r: tuple[float, float]) -> Quant:
    s, zp = activation_qparams(*r)
    return Quant(np.asarray(s, np.float32), np.asarray(zp, np.int32))


# ---- graph editing ---------------------------------------------------------------------------------

class _Editor:
    """Appends tensors and ops to a graph under construction, keeping tensor names unique."""

    def __init__(self, graph: Graph):
        self.g = graph
        self.names = {t.name for t in graph.tensors}

    def tensor(self, t: Tensor) -> int:
        name, k = t.name, 1
        while name in self.names:
            name, k = f"{t.name}.{k}", k + 1
        self.names.add(name)
        self.g.tensors.append(dataclasses.replace(t, name=name))
        return len(self.g.tensors) - 1

    def op(self, type_: OpType, inputs: list, out: Tensor, attrs: dict, name: str) -> int:
        y = self.tensor(out)
        self.g.ops.append(Op(type_, list(inputs), [y], dict(attrs), name))
        return y

    def quantize(self, x: int, quant: Quant, name: str) -> int:
        t = self.g.tensors[x]
        return self.op(OpType.QUANTIZE, [x], Tensor(f"{t.name}.q8", DType.I8, t.shape, quant=quant), {},
                       f"{name}.quantize")

    def dequantize(self, x: int, name: str) -> int:
        t = self.g.tensors[x]
        return self.op(OpType.DEQUANTIZE, [x], Tensor(f"{t.name}.f32", DType.F32, t.shape), {}, f"{name}.dequantize")

    def int8_layer(self, op: Op, src: Graph, x: int, yq: Quant, shift: np.ndarray | None = None) -> int:
        """The int8 twin of a float conv / depthwise / FC `op` of `src`, reading int8 tensor x;
        `shift` (per output channel) is added to the bias."""
        axis = HEAVY[op.type]
        w = src.tensors[op.inputs[1]].data
        grid = source_grid_scale(w)
        ws = weight_scales(w, axis) if grid is None else np.full(w.shape[axis], grid, np.float32)
        xs = float(self.g.tensors[x].quant.scale)
        b = op.inputs[2] if len(op.inputs) > 2 else None
        b = None if b is None else src.tensors[b].data
        if shift is not None:
            b = shift if b is None else b.astype(np.float64) + shift
        wname = src.tensors[op.inputs[1]].name
        wq = self.tensor(Tensor(f"{wname}.q8", DType.I8, w.shape, data=quantize_weights(w, ws, axis),
                                quant=Quant(ws, np.zeros(len(ws), np.int32), axis)))
        bq = self.tensor(Tensor(f"{op.name}.bias.q32", DType.I32, (len(ws),),
                                data=quantize_bias(b, xs, ws)))
        out = src.tensors[op.outputs[0]]
        return self.op(op.type, [x, wq, bq], Tensor(out.name, DType.I8, out.shape, quant=yq), op.attrs, op.name)


def _sign_only(graph: Graph, y: int, consumers: dict[int, list[int]]) -> list[Op] | None:
    """The SIGN_PACKs that are the only readers of y (through max pools), or None."""
    if y in graph.outputs or y not in consumers:
        return None
    signs = []
    for i in consumers[y]:
        op = graph.ops[i]
        if op.type is OpType.SIGN_PACK:
            signs.append(op)
        elif op.type is OpType.MAX_POOL2D:
            more = _sign_only(graph, op.outputs[0], consumers)
            if more is None:
                return None
            signs += more
        else:
            return None
    return signs


def _sign_shift(graph: Graph, op: Op, signs: list[Op], yq: Quant) -> tuple[np.ndarray, np.ndarray] | None:
    """A layer read only by signs need not be exact, only on the right side of each threshold. Rounding
    to the nearest code flips every value within half a step of a threshold that falls on a code (the
    constant background of an image sits exactly at a conv's bias). Shifting the bias by under half a
    step per channel puts each threshold halfway between two codes, so rounding never crosses it.
    Returns (bias shift, thresholds in code units), or None when the signs disagree or a clamp would move."""
    act = op.attrs.get(Attr.ACTIVATION, (0,))[0]
    if act != 0 or Attr.CLAMP in op.attrs:
        return None
    c = graph.tensors[op.outputs[0]].shape[-1]
    thr = []
    for sp in signs:
        t = sp.inputs[1] if len(sp.inputs) > 1 else None
        thr.append(np.zeros(c) if t is None else graph.tensors[t].data.astype(np.float64))
    if any(not np.array_equal(thr[0], t) for t in thr[1:]):
        return None
    s, zp = float(yq.scale), int(yq.zero_point)
    u = zp + thr[0] / s
    k = np.floor(u)
    return (k + 0.5 - u) * s, np.clip(k + 1, -128, 128).astype(np.float32)


def rewrite_int8(graph: Graph, ranges: dict[int, tuple[float, float]], keep: set[str],
                 shifts: dict[int, np.ndarray] | None = None) -> tuple[Graph, dict[int, int]]:
    """The int8 graph, and where each float tensor of `graph` lives in it (its int8 version when it has one).
    `shifts` receives the per-channel offsets that sign-only tensors carry (see _sign_shift)."""
    shifts = {} if shifts is None else shifts
    new = Graph(metadata=dict(graph.metadata))
    ed = _Editor(new)
    same: dict[int, int] = {}   # tensor -> its copy in its original dtype
    q8: dict[int, int] = {}     # float tensor -> its int8 version
    made_q8: set[int] = set()   # float tensors an int8 op produces (so their consumers may stay int8)
    T = graph.tensors

    for t in graph.inputs:
        same[t] = ed.tensor(T[t])
        new.inputs.append(same[t])

    def const(t: int) -> int:
        if t not in same:
            same[t] = ed.tensor(T[t])
        return same[t]

    def orig(t: int | None) -> int | None:
        if t is None:
            return None
        if T[t].is_const:
            return const(t)
        if t not in same:  # a float tensor only made in int8 so far
            same[t] = ed.dequantize(q8[t], T[t].name)
        return same[t]

    # a float tensor the source already quantized (QUANTIZE then DEQUANTIZE, e.g. QONNX Quant at
    # 8 bits) keeps the source's codes and scale: no requantization
    dequantized = {op.outputs[0]: op.inputs[0] for op in graph.ops
                   if op.type is OpType.DEQUANTIZE and T[op.inputs[0]].quant is not None
                   and not T[op.inputs[0]].quant.per_channel}

    def as_q8(t: int) -> int:
        if t not in q8:
            src = dequantized.get(t)
            q8[t] = orig(src) if src is not None else ed.quantize(orig(t), _quant(ranges[t]), T[t].name)
        return q8[t]

    def native_q8(t: int | None) -> bool:
        return t is not None and t in made_q8

    consumers = graph.consumers_of()
    sign_codes: dict[str, np.ndarray] = {}  # SIGN_PACK name -> code thresholds set by _sign_shift
    for op in graph.ops:
        x = op.inputs[0]
        out = T[op.outputs[0]]
        y = op.outputs[0]
        if op.type in HEAVY and T[x].dtype is DType.F32 and op.name not in keep:
            yq = _quant(ranges[y])
            signs = _sign_only(graph, y, consumers)
            shifted = _sign_shift(graph, op, signs, yq) if signs else None
            q8[y] = ed.int8_layer(op, graph, as_q8(x), yq, None if shifted is None else shifted[0])
            if shifted is not None:
                shifts[q8[y]] = shifted[0].astype(np.float32)
                sign_codes.update({sp.name: shifted[1] for sp in signs})
        elif op.type in PASSTHROUGH and native_q8(x):
            q8[y] = ed.op(op.type, [q8[x]], Tensor(out.name, DType.I8, out.shape, quant=new.tensors[q8[x]].quant),
                          op.attrs, op.name)
            if q8[x] in shifts and op.type is OpType.MAX_POOL2D:
                shifts[q8[y]] = shifts[q8[x]]
        elif op.type is OpType.GLOBAL_AVG_POOL and native_q8(x):
            q8[y] = ed.op(op.type, [q8[x]], Tensor(out.name, DType.I8, out.shape, quant=_quant(ranges[y])),
                          op.attrs, op.name)
        elif op.type is OpType.ADD and all(native_q8(t) for t in op.inputs):
            q8[y] = ed.op(op.type, [q8[t] for t in op.inputs],
                          Tensor(out.name, DType.I8, out.shape, quant=_quant(ranges[y])), op.attrs, op.name)
        elif op.type is OpType.SIGN_PACK and native_q8(x):
            xq = new.tensors[q8[x]].quant
            thr = op.inputs[1] if len(op.inputs) > 1 else None
            codes = sign_codes.get(op.name)
            if codes is None:
                codes = code_thresholds(None if thr is None else T[thr].data, T[x].shape[-1], float(xq.scale),
                                        int(xq.zero_point))
            c = ed.tensor(Tensor(f"{op.name}.thresholds.q8", DType.F32, codes.shape, data=codes))
            same[y] = ed.op(op.type, [q8[x], c], dataclasses.replace(out), op.attrs, op.name)
        else:
            same[y] = ed.op(op.type, [orig(t) for t in op.inputs], dataclasses.replace(out), op.attrs, op.name)
        if y in q8:
            made_q8.add(y)

    for t in graph.outputs:
        if t not in same:  # the model ends in int8: hand back float under the output's own name
            new.tensors[q8[t]].name = f"{T[t].name}.q8"
            ed.names.add(new.tensors[q8[t]].name)
            same[t] = ed.dequantize(q8[t], T[t].name)
            new.tensors[same[t]].name = T[t].name
        new.tensors[same[t]].io_layout = T[t].io_layout
        new.outputs.append(same[t])
    where = {t: q8.get(t, same.get(t)) for t in range(len(T)) if t in q8 or t in same}
    return new, where


# ---- errors ----------------------------------------------------------------------------------------

def _real(graph: Graph, t: int, a: np.ndarray, shifts: dict[int, np.ndarray] | None = None) -> np.ndarray:
    q = graph.tensors[t].quant
    if graph.tensors[t].dtype is DType.I8:
        r = dequantize_values(a, float(q.scale), int(q.zero_point))
        return r - shifts[t] if shifts and t in shifts else r
    return a.astype(np.float32, copy=False)


class _Err:
    def __init__(self):
        self.num, self.den = 0.0, 0.0

    def add(self, got, want):
        d = got.astype(np.float64) - want.astype(np.float64)
        self.num += float(np.sum(d * d))
        self.den += float(np.sum(want.astype(np.float64) ** 2))

    @property
    def value(self) -> float:
        return float(np.sqrt(self.num / self.den)) if self.den > 0 else float(np.sqrt(self.num))


def errors_alone(graph: Graph, ranges, cands: list[int], samples, progress=None) -> dict[str, float]:
    """Each candidate layer's error when it alone runs in int8, in one run: the float graph plus,
    for every candidate, an int8 twin fed its float input quantized."""
    g = graph.copy()
    g.tensors = list(graph.tensors)
    g.ops = list(graph.ops)
    ed = _Editor(g)
    pairs = []
    for i in cands:
        op = graph.ops[i]
        x, y = op.inputs[0], op.outputs[0]
        xq = ed.quantize(x, _quant(ranges[x]), f"{op.name}.alone")
        twin = ed.int8_layer(dataclasses.replace(op, name=f"{op.name}.alone"), graph, xq, _quant(ranges[y]))
        pairs.append((op.name, y, twin))
    errs = {name: _Err() for name, _, _ in pairs}
    extra = [t for _, y, tw in pairs for t in (y, tw)]
    for vals in _batches(g, extra, samples, progress, "error of each layer alone"):
        for name, y, tw in pairs:
            errs[name].add(_real(g, tw, vals[tw]), vals[y])
    return {k: e.value for k, e in errs.items()}


def errors_in_model(graph: Graph, qgraph: Graph, where: dict[int, int], points: list[tuple[str, int]], samples,
                    progress=None, shifts=None) -> dict[str, float]:
    """Error of each layer's output in the quantized model against the float model, same samples."""
    pts = [(name, t, where[t]) for name, t in points if t in where]
    fl = _batches(graph, [t for _, t, _ in pts], samples, None, "")
    qu = _batches(qgraph, [q for _, _, q in pts], samples, progress, "error in the int8 model")
    errs = {name: _Err() for name, _, _ in pts}
    for fv, qv in zip(fl, qu):
        for name, t, q in pts:
            errs[name].add(_real(qgraph, q, qv[q], shifts), fv[t])
    return {k: e.value for k, e in errs.items()}


# ---- the pass --------------------------------------------------------------------------------------

def _match_keep(graph: Graph, patterns) -> set[str]:
    names = [op.name for op in graph.ops]
    keep = set()
    for p in patterns or ():
        hit = [n for n in names if fnmatch.fnmatchcase(n, p)]
        if not hit:
            layers = [op.name for op in graph.ops if op.type in HEAVY]
            raise UserError(f"--keep-float {p}: no layer of that name; float layers that int8 would take: "
                            f"{', '.join(layers) or 'none'}")
        keep.update(hit)
    return keep


def _products(graph: Graph, op: Op) -> int:
    """Products per output value (K of the layer's GEMM)."""
    w = graph.tensors[op.inputs[1]].shape
    return w[0] * w[1] if op.type is OpType.DEPTHWISE_CONV2D else int(np.prod(w[1:]))


def quantize_graph(graph: Graph, samples: np.ndarray, method: str = "minmax", keep_float=(),
                   tolerance: float | None = 0.1, percentile: float = 99.99, error_samples: int = 256,
                   min_k: int = 16, progress: Progress | None = None) -> Int8Result:
    """Rewrite graph's float layers to int8 from calibration `samples` (S, *input shape[1:]), as fed.

    min_k: a conv or FC with fewer products per output (a 3x3 stem on one channel: 9) stays float:
    int8 kernels pad K to their vector width and requantize every output, so such a layer runs
    slower in int8 than in float (measured: docs/int8.md) while its weights are a few hundred bytes.
    Depthwise layers are exempt: their int8 kernels work across channels."""
    if method not in METHODS:
        raise UserError(f"calibration method {method!r}: choose one of {', '.join(METHODS)}")
    if not 50 < percentile < 100:
        raise UserError(f"percentile {percentile}: give a value between 50 and 100, like 99.99")
    T = graph.tensors
    keep = _match_keep(graph, keep_float)
    cands = [i for i, op in enumerate(graph.ops) if op.type in HEAVY and T[op.inputs[0]].dtype is DType.F32]
    res = Int8Result(graph, samples=len(samples), method=method)
    if not cands:
        res.notes.append("int8: no float conv / depthwise / fully connected layer to quantize; the model is unchanged")
        return res
    acts = [i for i, t in enumerate(T) if t.dtype is DType.F32 and not t.is_const]
    ranges = observe_ranges(graph, acts, samples, method, percentile, progress)
    sub = samples[:max(1, error_samples)]
    alone = errors_alone(graph, ranges, cands, sub, progress)
    auto = {graph.ops[i].name for i in cands
            if tolerance is not None and alone[graph.ops[i].name] > tolerance and graph.ops[i].name not in keep}
    shifts: dict[int, np.ndarray] = {}
    small = {graph.ops[i].name for i in cands if graph.ops[i].type is not OpType.DEPTHWISE_CONV2D
             and _products(graph, graph.ops[i]) < min_k and graph.ops[i].name not in keep | auto}
    qgraph, where = rewrite_int8(graph, ranges, keep | auto | small, shifts)
    points = [(op.name, op.outputs[0]) for op in graph.ops
              if op.type in set(HEAVY) | {OpType.ADD, OpType.GLOBAL_AVG_POOL} and T[op.outputs[0]].dtype is DType.F32]
    in_model = errors_in_model(graph, qgraph, where, points, sub, progress, shifts)
    by_name = {op.name: op for op in qgraph.ops}
    for name, _ in points:
        op = by_name[name]
        dt = "int8" if qgraph.tensors[op.outputs[0]].dtype is DType.I8 else "fp32"
        why = ""
        if name in keep:
            why = "kept in float: --keep-float"
        elif name in auto:
            why = f"kept in float: int8 alone gives {100 * alone[name]:.1f} % error > tolerance {100 * tolerance:g} %"
        elif name in small:
            why = (f"kept in float: {_products(qgraph, op)} products per output, fewer than --int8-min-k "
                   f"{min_k}: int8 runs no faster there")
        res.layers.append(LayerInt8(name, op.type.name, dt, in_model.get(name), alone.get(name), why))
    res.graph = qgraph
    qgraph.metadata["quantization"] = (f"int8 post-training: {len(samples)} calibration samples, {method} ranges, "
                                       f"per-channel weights")
    return res
