"""The converters' working graph: one node per logical layer, NCHW semantics, NumPy constants.

Every front-end (PyTorch, ONNX, TFLite) lowers its source into this graph; the passes in this
package rewrite it (BatchNorm folding, binarization, thresholds) and `emit` turns it into the
packed IR (NHWC, bit-packed). Keeping it in the source framework's layout lets the front-ends
stay literal and puts every layout decision in one place.

Node ops and their attributes (channel axis is 1; shapes are the logical NCHW / [N, K] ones):
    input     name, layout ("NCHW" or "NC")
    conv      w [O, I/g, kh, kw], b [O]?, stride, pads (t, l, b, r), dil, groups, clamp
    linear    w [O, K], b [O]?, clamp
    bconv     wb ±1 [O, I/groups, kh, kw], mult [O], bias [O], stride, pads, dil, pad_value, groups, clamp,
              thresholds [O] int / directions [O] when the output is packed bits
    bfc       wb ±1 [O, K], mult, bias, clamp, thresholds / directions
    hetconv   w3 [O, I/P, kh, kw], w1 [O, I - I/P], part, b?, stride, pads, dil, clamp
    sign      t [C]: +1 where x >= t, else -1; zero_at (bool: the source gives 0 at x == t)
    affine    scale [C], bias [C]
    clamp     lo, hi (relu = (0, inf), relu6 = (0, 6), hardtanh)
    prelu     slope [C]
    maxpool / avgpool  kernel, stride, pads, count_include_pad (avg)
    gap       global average pool (keepdims)
    add, cat (axis), flatten, softmax, unpack
    abs, cmean (mean over channels, kept as a dim of 1), mul (a · b, b may have 1 channel)
Float clamps use (-inf, inf) for "none".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

NO_CLAMP = (-math.inf, math.inf)


@dataclass
class WNode:
    op: str
    inputs: list[int]
    shape: tuple[int, ...]
    attrs: dict = field(default_factory=dict)
    name: str = ""
    source: str = ""          # "module.path (file.py:123)" for errors and the report
    id: int = -1


class WGraph:
    def __init__(self):
        self.nodes: dict[int, WNode] = {}
        self.outputs: list[int] = []
        self._next = 0
        self.notes: list[str] = []   # conversion notes that are not tied to one layer

    def add(self, op: str, inputs, shape, name: str = "", source: str = "", **attrs) -> int:
        n = WNode(op, [int(i) for i in inputs], tuple(int(d) for d in shape), attrs, name or f"{op}_{self._next}",
                  source, self._next)
        self.nodes[n.id] = n
        self._next += 1
        return n.id

    def __getitem__(self, i: int) -> WNode:
        return self.nodes[i]

    def order(self) -> list[WNode]:
        """Nodes in a topological order (insertion order is one unless a pass rewired)."""
        seen, out = set(), []

        def visit(i):
            if i in seen:
                return
            seen.add(i)
            for j in self.nodes[i].inputs:
                visit(j)
            out.append(self.nodes[i])

        for i in sorted(self.nodes):
            visit(i)
        return out

    def users(self) -> dict[int, list[int]]:
        u: dict[int, list[int]] = {i: [] for i in self.nodes}
        for n in self.nodes.values():
            for j in n.inputs:
                u[j].append(n.id)
        for o in self.outputs:
            u[o].append(-1)  # -1: a graph output
        return u

    def replace_uses(self, old: int, new: int) -> None:
        for n in self.nodes.values():
            n.inputs = [new if j == old else j for j in n.inputs]
        self.outputs = [new if j == old else j for j in self.outputs]

    def prune(self) -> None:
        """Drop nodes no output depends on."""
        live, stack = set(), list(self.outputs)
        while stack:
            i = stack.pop()
            if i in live:
                continue
            live.add(i)
            stack.extend(self.nodes[i].inputs)
        for i in list(self.nodes):
            if i not in live:
                del self.nodes[i]


def per_channel(value, channels: int, what: str) -> np.ndarray:
    """A scalar or per-channel constant as a float32 [channels] vector."""
    a = np.asarray(value, dtype=np.float32)
    if a.size == 1:
        return np.full(channels, a.reshape(()), dtype=np.float32)
    if a.size != channels:
        raise ValueError(f"{what}: {a.size} values for {channels} channels")
    return a.reshape(channels).astype(np.float32)


def channel_vector(k, shape) -> np.ndarray | None:
    """A constant operand of an elementwise op as one value per channel (axis 1), if it is one
    (a scalar, a [C] / [1, C, 1, 1] vector, or a full tensor constant along the other axes)."""
    k = np.asarray(k, np.float32)
    ch = shape[1] if len(shape) >= 2 else 1
    if k.size == 1:
        return np.full(ch, k.reshape(()), np.float32)
    try:
        full = np.broadcast_to(k, shape)
    except ValueError:
        return None
    vec = full.reshape(shape[0], ch, -1)[0, :, 0]
    if not np.array_equal(full, np.broadcast_to(vec.reshape((1, ch) + (1,) * (len(shape) - 2)), shape)):
        return None
    return vec.astype(np.float32)
