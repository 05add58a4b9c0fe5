"""Fold per-channel affine ops (BatchNorm, scales, biases) and clamps into the layer before them.

A float conv / linear takes the affine into its weights and bias; a binary layer takes it into
its output multiplier and bias, which keeps its weights binary. Folding needs the producer's
output to have no other reader, and an affine cannot move through a clamp.
"""
from __future__ import annotations

import math

import numpy as np

from .graph import NO_CLAMP, WGraph

PRODUCERS = ("conv", "linear", "bconv", "bfc", "hetconv", "kconv", "kfc", "horq")
FUSED_CLAMP_OPS = PRODUCERS + ("affine", "add")  # every op whose emitter honours attrs["clamp"]


def _fold_affine(g: WGraph, p, scale: np.ndarray, bias: np.ndarray) -> None:
    a = p.attrs
    oc = scale.shape[0]
    if "mult" not in a:  # weights still real (a HORQ layer before binarize): scale them
        keys = ("w3", "w1") if p.op == "hetconv" else ("w",)
        for k in keys:
            w = a[k]
            a[k] = (w * scale.reshape((oc,) + (1,) * (w.ndim - 1))).astype(np.float32)
        b = a.get("b")
        a["b"] = ((np.zeros(oc, np.float32) if b is None else b) * scale + bias).astype(np.float32)
    else:  # bconv / bfc / kconv / kfc / horq: the binary weights stay, the epilogue absorbs the affine
        a["mult"] = (a["mult"] * scale).astype(np.float32)
        a["bias"] = (a["bias"] * scale + bias).astype(np.float32)


def fold_affine(g: WGraph) -> None:
    changed = True
    while changed:
        changed = False
        users = g.users()
        for n in g.order():
            if n.op not in ("affine", "clamp") or n.id not in g.nodes:
                continue
            p = g[n.inputs[0]]
            if users[p.id] != [n.id]:
                continue
            if n.op == "affine" and p.op in PRODUCERS and p.attrs.get("clamp", NO_CLAMP) == NO_CLAMP \
                    and "thresholds" not in p.attrs:
                _fold_affine(g, p, n.attrs["scale"], n.attrs["bias"])
            elif n.op == "affine" and p.op == "affine" and p.attrs.get("clamp", NO_CLAMP) == NO_CLAMP:
                # (an affine cannot move through the clamp of the one before it)
                s, b = n.attrs["scale"], n.attrs["bias"]
                p.attrs["bias"] = (p.attrs["bias"] * s + b).astype(np.float32)
                p.attrs["scale"] = (p.attrs["scale"] * s).astype(np.float32)
            elif n.op == "clamp" and p.op in FUSED_CLAMP_OPS and "thresholds" not in p.attrs:
                lo, hi = p.attrs.get("clamp", NO_CLAMP)
                p.attrs["clamp"] = (max(lo, n.attrs["lo"]), min(hi, n.attrs["hi"]))
            else:
                continue
            p.name = p.name or n.name
            g.replace_uses(n.id, p.id)
            del g.nodes[n.id]
            changed = True
            break


def clamp_is_identity(c) -> bool:
    return c[0] == -math.inf and c[1] == math.inf
