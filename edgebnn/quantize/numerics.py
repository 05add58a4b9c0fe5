"""The int8 numbers of post-training quantization, as TFLite's converter chooses them.

Activations: per tensor, asymmetric, the range widened to hold 0 (so padding and ReLU's
zero are exact codes), zero point nudged into [-128, 127]. Weights: per output channel,
symmetric in [-127, 127]. Biases: int32 in units of input scale × weight scale. Rounding
is half away from zero (C's round), as TFLite's tools round.
"""
from __future__ import annotations

import numpy as np

QMIN, QMAX = -128, 127


def round_away(x) -> np.ndarray:
    """Round half away from zero (C's round / std::round), elementwise."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero point) for values in [lo, hi]: TFLite's ChooseQuantizationParams."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-30:  # a tensor that is always 0: any scale represents it
        return 1.0, 0
    scale = np.float32((hi - lo) / (QMAX - QMIN))
    zp_from_min = QMIN - lo / float(scale)
    if zp_from_min <= QMIN:
        zp = QMIN
    elif zp_from_min >= QMAX:
        zp = QMAX
    else:
        zp = int(round_away(zp_from_min))
    return float(scale), zp


def weight_scales(w: np.ndarray, axis: int) -> np.ndarray:
    """One symmetric scale per output channel: max |w| / 127 (an all-zero channel gets a tiny one)."""
    w = np.asarray(w, np.float32)
    amax = np.max(np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)), axis=1)
    return (np.maximum(amax, 1e-12) / 127.0).astype(np.float32)


def source_grid_scale(w: np.ndarray) -> float | None:
    """The step of an int8 grid the weights already lie on (a source quantized them per tensor,
    e.g. QONNX Quant at 8 bits), so int8 keeps the source's scale instead of requantizing; None
    for ordinary float weights. Tries max|w| / k for the codes k a symmetric 8-bit grid can end on."""
    w = np.asarray(w, np.float64).reshape(-1)
    amax = float(np.max(np.abs(w))) if w.size else 0.0
    if amax == 0.0:
        return None
    probe = w[:: max(1, w.size // 64)]
    for k in range(127, 63, -1):
        s = amax / k
        if np.all(np.abs(probe / s - np.round(probe / s)) < 1e-3) and np.all(np.abs(w / s - np.round(w / s)) < 1e-3):
            return float(np.float32(s))
    return None


def quantize_weights(w: np.ndarray, scales: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * w.ndim
    shape[axis] = -1
    q = round_away(np.asarray(w, np.float64) / scales.astype(np.float64).reshape(shape))
    return np.clip(q, -127, 127).astype(np.int8)


def quantize_bias(b: np.ndarray | None, in_scale: float, w_scales: np.ndarray) -> np.ndarray:
    """int32 bias in units of in_scale * w_scale[c] (TFLite's bias scale), clipped to int32."""
    bias_scale = np.float32(in_scale) * w_scales.astype(np.float32)
    if b is None:
        return np.zeros(len(w_scales), np.int32)
    q = round_away(np.asarray(b, np.float64) / bias_scale.astype(np.float64))
    return np.clip(q, -(2 ** 31), 2 ** 31 - 1).astype(np.int32)


def quantize_values(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """Reals -> int8 codes, as the runtime's QUANTIZE does."""
    q = round_away(np.asarray(x, np.float64) / np.float64(np.float32(scale))) + zp
    return np.clip(q, QMIN, QMAX).astype(np.int8)


def dequantize_values(q: np.ndarray, scale: float, zp: int) -> np.ndarray:
    return ((np.asarray(q, np.int32) - zp) * np.float32(scale)).astype(np.float32)


def code_thresholds(thr: np.ndarray | None, channels: int, scale: float, zp: int) -> np.ndarray:
    """A sign threshold t on reals as a threshold on int8 codes: real < t <=> q < ceil(zp + t/scale)
    for integer q. Stored as float (exact integers), clipped to just outside the code range."""
    t = np.zeros(channels, np.float64) if thr is None else np.asarray(thr, np.float64)
    code = np.ceil(zp + t / np.float64(np.float32(scale)))
    return np.clip(code, QMIN - 1, QMAX + 1).astype(np.float32)
