"""Passes from a front-end's working graph to the packed IR, in the order `run_passes` applies them."""
from __future__ import annotations

from .binarize import binarize
from .emit import EmitError, emit
from .fold import fold_affine
from .graph import WGraph, WNode
from .hetconv import detect_hetconv
from .kbit import kbit
from .thresholds import fuse_thresholds


def run_passes(g: WGraph) -> WGraph:
    g.prune()
    fold_affine(g)        # BatchNorm / scale / bias into the conv or linear before it
    binarize(g)           # sign input + ±α weights -> binary layer
    kbit(g)               # k-bit quantized input + ±α weights -> K-bit conv
    detect_hetconv(g)     # dense float conv with the HetConv zero pattern -> fused HetConv
    fold_affine(g)        # binary layers expose multipliers: fold what now follows them
    fuse_thresholds(g)    # binary -> [maxpool] -> sign: packed output, binary max pool
    return g


__all__ = ["WGraph", "WNode", "run_passes", "emit", "EmitError"]
