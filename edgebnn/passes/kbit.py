"""Map k-bit quantized activations feeding binary weights onto the runtime's K-bit conv.

A front-end's `quant` node is a uniform quantizer: codes q in [qmin, qmax], value (q - zero)·s.
KBIT_CONV2D reads unsigned codes u = clamp(floor(x/step + 0.5), 0, 2^bits - 1) against ±1
weights. With u = q - qmin the layer's output is
    W·a = α_o·s·Σ u·w  +  α_o·s·(qmin - zero)·Σ w,
so the K-bit conv takes multiplier α_o·s and the constant part as bias, and its input is the
quantizer's input shifted by -(qmin - zero)·s and clamped to the code range (an affine and a
clamp, which fold into the layer before). Zero padding of a conv stays exact only when the code
0 means the value 0 (qmin == zero).

Rounding: the runtime rounds half up; a QONNX ROUND quantizer rounds half to even, so the two
differ where x/s + zero lands exactly on k + 0.5 with k even; the report says so.
A `quant` node left over (weights not binary) is emulated by the emitter in float:
clamp + QUANTIZE + DEQUANTIZE (int8), which rounds half away from zero.
"""
from __future__ import annotations

import math

import numpy as np

from .binarize import binary_weights
from .graph import WGraph


def _uniform(v) -> float | None:
    v = np.asarray(v, np.float32)
    return float(v.reshape(-1)[0]) if v.size and np.all(v == v.reshape(-1)[0]) else None


def kbit(g: WGraph) -> None:
    users = g.users()
    for q in list(g.order()):
        if q.op != "quant" or q.id not in g.nodes:
            continue
        a = q.attrs
        s, z = _uniform(a["scale"]), a["zero"]
        n_codes = a["qmax"] - a["qmin"]
        bits = max(1, math.ceil(math.log2(n_codes + 1)))
        cands = [g[u] for u in users[q.id] if u >= 0]
        why = ""
        if s is None:
            why = "per-channel activation scale has no K-bit kernel"
        elif z != int(z):
            why = "a fractional zero point has no K-bit kernel"
        elif -1 in users[q.id] or not cands or any(c.op not in ("conv", "linear") for c in cands):
            why = ""  # read by something other than a conv/linear: emulate, nothing to say per layer
            cands = []
        found = {}
        for c in cands:
            if why:
                break
            w, reason = binary_weights(c.attrs["w"])
            if w is None:
                why = f"input is {a['bits']}-bit quantized (emulated in float) but {reason}"
            elif c.op == "conv" and c.attrs["groups"] != 1:
                why = f"grouped K-bit conv (groups={c.attrs['groups']}) has no kernel"
            elif c.op == "conv" and any(c.attrs["pads"]) and a["qmin"] != z:
                why = "K-bit conv pads with code 0, which is not the value 0 of this quantizer"
            else:
                found[c.id] = w
        if why or not cands:
            for c in cands:
                c.attrs["why_float"] = why
            g.notes.append(f"{q.name}: {a['bits']}-bit activation quantizer emulated in float (clamp + int8 "
                           f"QUANTIZE/DEQUANTIZE, which rounds half away from zero; the source rounds "
                           f"{a['rounding']}){': ' + why if why else ''}")
            continue
        offset = (a["qmin"] - z) * s
        ch = q.shape[1] if len(q.shape) >= 2 else 1
        shift = g.add("affine", [q.inputs[0]], q.shape, name=f"{q.name}.shift", source=q.source,
                      scale=np.ones(ch, np.float32), bias=np.full(ch, -offset, np.float32))
        rng = g.add("clamp", [shift], q.shape, name=f"{q.name}.range", source=q.source, lo=0.0,
                    hi=float(np.float32(n_codes * s)))
        for c in cands:
            signs, alpha = found[c.id]
            o = signs.shape[0]
            rows = signs.reshape(o, -1).astype(np.float64).sum(1)
            b = c.attrs.get("b")
            b = np.zeros(o, np.float64) if b is None else b.astype(np.float64)
            attrs = dict(wb=signs, mult=(alpha.astype(np.float64) * s).astype(np.float32),
                         bias=(b + offset * alpha.astype(np.float64) * rows).astype(np.float32), bits=bits,
                         step=s, clamp=c.attrs["clamp"], linear=c.op == "linear")
            if c.op == "conv":
                attrs.update(stride=c.attrs["stride"], pads=c.attrs["pads"], dil=c.attrs["dil"])
            c.op, c.attrs = "kconv", attrs
            c.inputs[0] = rng
        if a["rounding"] in ("ROUND", "HALF_EVEN"):
            g.notes.append(f"{q.name}: K-bit kernel rounds half up where the source rounds half to even; they "
                           "differ only for inputs exactly halfway between two levels")
        elif a["rounding"] != "HALF_UP":
            g.notes.append(f"{q.name}: source rounding {a['rounding']} differs from the K-bit kernel's half-up "
                           "rounding; results may differ")
        del g.nodes[q.id]
        users = g.users()
