"""Recognise binary layers by value, not by class.

A conv or linear layer becomes binary when (1) its input is a sign node (a front-end found an
op, or a chain of ops, whose output is ±1) and (2) its folded weights take exactly two values
±α_o per output channel. Then it runs as xor-popcount with α_o as its output multiplier. Any
layer that stays float records why, for the report.
"""
from __future__ import annotations

import numpy as np

from .graph import WGraph

# Weights computed in the source's forward (Bi-Real's `scale.detach() * sign(w) - w.detach() + w`)
# land within float rounding of ±α, not exactly on it.
REL_TOL = 1e-5


def binary_weights(w: np.ndarray):
    """(signs ±1, α [O]) when every output channel of w takes two values ±α_o, else (None, reason)."""
    o = w.shape[0]
    flat = w.reshape(o, -1).astype(np.float64)
    alpha = np.abs(flat).mean(axis=1)
    if np.any(alpha <= 0):
        return None, "a filter is all zeros"
    dev = np.abs(np.abs(flat) - alpha[:, None]).max(axis=1) / alpha
    if np.any(dev > REL_TOL):
        distinct = int(np.median([np.unique(r).size for r in flat[: min(o, 8)]]))
        return None, f"weights are not ±α per output channel ({distinct} distinct values in a filter)"
    signs = np.where(flat >= 0, 1, -1).astype(np.int8).reshape(w.shape)
    return (signs, alpha.astype(np.float32)), ""


def _binary_epilogue(n, alpha, scale=1.0):
    oc = alpha.shape[0]
    b = n.attrs.get("b")
    return dict(mult=(alpha * np.float32(scale)).astype(np.float32),
                bias=np.zeros(oc, np.float32) if b is None else b.astype(np.float32), clamp=n.attrs["clamp"])


def binarize(g: WGraph) -> None:
    for n in list(g.order()):
        if n.op == "horq":  # HORQ layers need binary weights: there is no float fallback for them
            found, why = binary_weights(n.attrs["w"])
            if found is None:
                raise ValueError(f"HORQ layer '{n.name}' at {n.source}: {why}")
            n.attrs.update(wb=found[0], **_binary_epilogue(n, found[1]))
            del n.attrs["w"]
            continue
        if n.op not in ("conv", "linear"):
            continue
        x = g[n.inputs[0]]
        found, why = binary_weights(n.attrs["w"])
        if x.op == "kquant":
            if found is None:
                raise ValueError(f"k-bit activations feed '{n.name}' at {n.source}, whose {why}: only layers "
                                 "with binary weights take k-bit inputs")
            if n.op == "conv" and (n.attrs["groups"] != 1 or n.attrs.get("pad_value", 0) != 0):
                raise ValueError(f"k-bit conv '{n.name}' at {n.source}: groups and one padding are not supported")
            common = dict(wb=found[0], bits=x.attrs["bits"], step=x.attrs["step"],
                          **_binary_epilogue(n, found[1], x.attrs["step"]))
            if n.op == "conv":
                n.op = "kconv"
                n.attrs = dict(stride=n.attrs["stride"], pads=n.attrs["pads"], dil=n.attrs["dil"], **common)
            else:
                n.op = "kfc"
                n.attrs = common
            continue
        if x.op != "sign":
            if found is not None:
                n.attrs["why_float"] = "weights are binary but the input is not (no sign-like op feeds it)"
            else:
                n.attrs["why_float"] = "input is not binarized and " + why
            continue
        if found is None:
            n.attrs["why_float"] = "input is binary but " + why
            continue
        signs, alpha = found
        oc = signs.shape[0]
        b = n.attrs.get("b")
        common = dict(wb=signs, mult=alpha, bias=np.zeros(oc, np.float32) if b is None else b.astype(np.float32),
                      clamp=n.attrs["clamp"])
        if x.attrs.get("zero_at"):
            g.notes.append(f"{n.name}: the source's sign gives 0 at exactly its threshold; the packed "
                           "format has no 0 and gives +1 there")
        if n.op == "conv":
            n.op = "bconv"
            n.attrs = dict(stride=n.attrs["stride"], pads=n.attrs["pads"], dil=n.attrs["dil"],
                           pad_value=n.attrs.get("pad_value", 0), groups=n.attrs["groups"], **common)
        else:
            n.op = "bfc"
            n.attrs = common
