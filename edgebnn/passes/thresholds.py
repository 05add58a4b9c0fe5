"""Fuse sign into the binary layer before it, so binary layers chain on packed bits.

bconv -> sign            becomes  bconv with packed output (integer thresholds on the accumulator)
bconv -> maxpool -> sign becomes  bconv (packed) -> binary maxpool, because sign is monotone and
                                  commutes with max.
The integer threshold of channel o is found by evaluating the layer's float epilogue
clamp(mult_o · acc + bias_o) in float32 for every accumulator value it can take, so the packed
result equals sign of the float result exactly, rounding included.
"""
from __future__ import annotations

import numpy as np

from .graph import NO_CLAMP, WGraph


def integer_thresholds(k: int, mult, bias, clamp, t):
    """thresholds, directions (int32 [O]) for outputs sign(clamp(mult·acc + bias) - t), acc in [-k, k]."""
    acc = np.arange(-k, k + 1, dtype=np.int64)
    # float32 like the C epilogue: product rounded, then the sum (no FMA contraction)
    y = (mult[:, None].astype(np.float32) * acc[None, :].astype(np.float32)).astype(np.float32)
    y = (y + bias[:, None].astype(np.float32)).astype(np.float32)
    lo, hi = clamp
    y = np.clip(y, np.float32(lo) if lo > -np.inf else None, np.float32(hi) if hi < np.inf else None)
    pos = y >= t[:, None].astype(np.float32)
    th = np.empty(len(mult), np.int64)
    dirs = np.empty(len(mult), np.int64)
    for o in range(len(mult)):
        p = pos[o]
        idx = np.nonzero(p)[0]
        if mult[o] >= 0:
            dirs[o] = 1
            th[o] = k + 1 if idx.size == 0 else acc[idx[0]]
            ok = np.array_equal(p, acc >= th[o])
        else:
            dirs[o] = -1
            th[o] = -k - 1 if idx.size == 0 else acc[idx[-1]]
            ok = np.array_equal(p, acc <= th[o])
        if not ok:  # cannot happen for a monotone epilogue; guard against a silent wrong fuse
            return None
    return th.astype(np.int32), dirs.astype(np.int32)


def _per_channel_of_flat(t, shape):
    """Per-feature thresholds of a flattened [N, C, H, W] as per-channel ones, when they are."""
    if len(shape) != 4:
        return t
    per = np.asarray(t).reshape(shape[1], -1)
    return per[:, 0] if np.all(per == per[:, :1]) else None


def _fan_in(n) -> int:
    return int(np.prod(n.attrs["wb"].shape[1:]))


def fuse_thresholds(g: WGraph) -> None:
    changed = True
    while changed:
        changed = False
        users = g.users()
        for s in g.order():
            if s.op != "sign":
                continue
            x = g[s.inputs[0]]
            t = s.attrs["t"]
            flat = pool = None
            if x.op == "flatten" and users[x.id] == [s.id]:
                t = _per_channel_of_flat(t, g[x.inputs[0]].shape)
                flat, x = x, g[x.inputs[0]]
            if t is not None and x.op == "maxpool" and users[x.id] == [(flat or s).id]:
                pool, x = x, g[x.inputs[0]]
            if t is None or x.op not in ("bconv", "bfc") or "thresholds" in x.attrs or \
                    users[x.id] != [(pool or flat or s).id]:
                continue
            res = integer_thresholds(_fan_in(x), x.attrs["mult"], x.attrs["bias"], x.attrs.get("clamp", NO_CLAMP), t)
            if res is None:
                continue
            x.attrs["thresholds"], x.attrs["directions"] = res
            last = flat or pool or x
            g.replace_uses(s.id, last.id)
            del g.nodes[s.id]
            changed = True
            break
