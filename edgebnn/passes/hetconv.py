"""Recognise HetConv in a dense float conv by its zero pattern.

Filter j of a HetConv with part P has a kh×kw kernel on input channels c ≡ j (mod P) and only a
centre tap (1×1) on the others. A dense conv whose off-centre taps are exactly zero outside that
pattern is that HetConv; the largest such P wins (it has the fewest FLOPs).
"""
from __future__ import annotations

import numpy as np

from .graph import WGraph


def hetconv_part(w: np.ndarray) -> int:
    o, c, kh, kw = w.shape
    if kh == 1 or kw == 1 or kh % 2 == 0 or kw % 2 == 0:
        return 1
    off = w.copy()
    off[:, :, kh // 2, kw // 2] = 0
    nz = np.any(off != 0, axis=(2, 3))  # [O, C]: channel c has off-centre taps in filter j
    j = np.arange(o)[:, None]
    ch = np.arange(c)[None, :]
    for p in sorted((p for p in range(2, c + 1) if c % p == 0), reverse=True):
        if not np.any(nz & ((ch % p) != (j % p))):
            return p
    return 1


def split_hetconv(w: np.ndarray, p: int):
    o, c, kh, kw = w.shape
    w3 = np.stack([w[j, (j % p)::p] for j in range(o)])                      # [O, C/P, kh, kw]
    rest = [[ch for ch in range(c) if ch % p != j % p] for j in range(o)]
    w1 = np.stack([w[j, rest[j], kh // 2, kw // 2] for j in range(o)])       # [O, C - C/P]
    return w3.astype(np.float32), w1.astype(np.float32)


def detect_hetconv(g: WGraph) -> None:
    for n in g.order():
        if n.op != "conv" or n.attrs["groups"] != 1:
            continue
        p = hetconv_part(n.attrs["w"])
        pads = n.attrs["pads"]
        kh, kw = n.attrs["w"].shape[2:]
        same = pads[0] == pads[2] == (kh // 2) * n.attrs["dil"][0] and pads[1] == pads[3] == (kw // 2) * n.attrs["dil"][1]
        if p < 2 or not same:
            continue
        w3, w1 = split_hetconv(n.attrs["w"], p)
        n.op = "hetconv"
        n.attrs = dict(w3=w3, w1=w1, part=p, b=n.attrs.get("b"), stride=n.attrs["stride"], pads=pads,
                       dil=n.attrs["dil"], clamp=n.attrs["clamp"],
                       why_float=n.attrs.get("why_float", "HetConv runs as a fused float kernel"))
