"""NumPy references for the edgebnn kernels.

Each function computes exactly what the matching C reference kernel in
runtime/kernels/ref/ref.h computes, on plain NumPy arrays:

- activations are NHWC; conv weights are OHWI ([oc, kh, kw, ic/groups]);
- binary tensors are given as +-1 arrays (any numeric dtype), not packed
  bits; ``pack_bits`` / ``unpack_bits`` implement the BIT1 layout;
- ``pads`` is (top, left, bottom, right); ``strides`` / ``dilations`` are
  (h, w) pairs; the output size is ``(in + pad_a + pad_b - eff) // s + 1``
  with ``eff = (k - 1) * d + 1``;
- integer accumulators are computed in integer arithmetic (int64), float
  ops in float64 and returned as float32 (compare with a tolerance), except
  where the C code's float32 rounding decides the result (K-bit codes, HORQ),
  which is reproduced step by step in float32.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

INF = float("inf")

__all__ = [
    "out_size", "same_pads", "pack_bits", "unpack_bits", "sign",
    "conv2d", "depthwise_conv2d", "fully_connected", "hetconv2d",
    "bconv2d_acc", "bfc_acc", "acc_to_f32", "acc_to_bits",
    "kbit_codes", "kbit_conv2d_acc",
    "horq_conv2d_acc", "horq_to_f32", "horq_conv2d",
    "max_pool2d", "avg_pool2d", "bmax_pool2d", "global_avg_pool",
    "add", "clamp", "relu", "relu6", "hardtanh", "prelu", "affine", "softmax",
    "transpose", "channel_shuffle", "concat", "quantize_i8", "dequantize_i8",
]


# ---- geometry ---------------------------------------------------------------

def _pair(v):
    if np.isscalar(v):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def out_size(in_size, k, s=1, d=1, pad_a=0, pad_b=0):
    """Output length of a window op along one axis."""
    eff = (k - 1) * d + 1
    return (in_size + pad_a + pad_b - eff) // s + 1


def same_pads(ih, iw, kh, kw, strides=(1, 1), dilations=(1, 1)):
    """TF/ONNX SAME_UPPER padding (top, left, bottom, right): output
    ceil(in / s), the odd pixel of padding goes to the bottom/right."""
    sh, sw = _pair(strides)
    dh, dw = _pair(dilations)

    def one(i, k, s, d):
        eff = (k - 1) * d + 1
        o = -(-i // s)
        total = max((o - 1) * s + eff - i, 0)
        return total // 2, total - total // 2

    pt, pb = one(ih, kh, sh, dh)
    pl, pr = one(iw, kw, sw, dw)
    return pt, pl, pb, pr


def _windows(x, kh, kw, strides, dilations, pads, pad_value=0):
    """Padded sliding windows of an NHWC array: [n, oh, ow, kh, kw, c]
    (a read-only strided view of a padded copy)."""
    sh, sw = _pair(strides)
    dh, dw = _pair(dilations)
    pt, pl, pb, pr = (int(p) for p in pads)
    n, ih, iw, c = x.shape
    oh = out_size(ih, kh, sh, dh, pt, pb)
    ow = out_size(iw, kw, sw, dw, pl, pr)
    assert oh > 0 and ow > 0, "empty output"
    # Pad (or crop, for a negative pad) to exactly what the windows read.
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    xp = np.full((n, need_h, need_w, c), pad_value, dtype=x.dtype)
    y0, y1 = max(0, -pt), min(ih, need_h - pt)
    x0, x1 = max(0, -pl), min(iw, need_w - pl)
    if y1 > y0 and x1 > x0:
        xp[:, y0 + pt:y1 + pt, x0 + pl:x1 + pl, :] = x[:, y0:y1, x0:x1, :]
    s = xp.strides
    return as_strided(
        xp,
        shape=(n, oh, ow, kh, kw, c),
        strides=(s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]),
        writeable=False,
    )


def _inside_mask(shape_nhw, kh, kw, strides, dilations, pads):
    """[1, oh, ow, kh, kw, 1] bool: which taps of each window are inside."""
    n, ih, iw = shape_nhw
    ones = np.ones((1, ih, iw, 1), dtype=np.int8)
    return _windows(ones, kh, kw, strides, dilations, pads, 0).astype(bool)


def _clamp(y, out_min, out_max):
    return np.minimum(np.maximum(y, out_min), out_max)


def _pm1_int(a):
    a = np.asarray(a)
    assert np.all((a == 1) | (a == -1)), "expected a +-1 array"
    return a.astype(np.int64)


# ---- BIT1 packing -----------------------------------------------------------

def pack_bits(pm1):
    """+-1 array [..., c] -> uint64 words [..., ceil(c/64)] (BIT1: element j in
    word j//64, bit j%64, little-endian; bit 1 = -1, padding bits 0)."""
    a = np.asarray(pm1)
    assert np.all((a == 1) | (a == -1)), "expected a +-1 array"
    c = a.shape[-1]
    words = (c + 63) // 64
    bits = np.zeros(a.shape[:-1] + (words * 64,), dtype=np.uint64)
    bits[..., :c] = (a < 0)
    bits = bits.reshape(a.shape[:-1] + (words, 64))
    shifts = np.arange(64, dtype=np.uint64)
    return np.bitwise_or.reduce(bits << shifts, axis=-1).astype(np.uint64)


def unpack_bits(words, c):
    """uint64 words [..., ceil(c/64)] -> +-1 float32 [..., c]."""
    w = np.asarray(words, dtype=np.uint64)
    shifts = np.arange(64, dtype=np.uint64)
    bits = (w[..., None] >> shifts) & np.uint64(1)
    bits = bits.reshape(w.shape[:-1] + (w.shape[-1] * 64,))[..., :c]
    return np.where(bits != 0, np.float32(-1), np.float32(1))


def sign(x, thr=None):
    """Sign-pack semantics: -1 where x < thr (per last-axis channel, default
    0), else +1 (so sign(0) = +1). Returns +-1 float32."""
    x = np.asarray(x, dtype=np.float32)
    t = np.float32(0) if thr is None else np.asarray(thr, dtype=np.float32)
    return np.where(x < t, np.float32(-1), np.float32(1))


# ---- float convolutions -----------------------------------------------------

def conv2d(x, w, bias=None, strides=(1, 1), dilations=(1, 1),
           pads=(0, 0, 0, 0), groups=1, out_min=-INF, out_max=INF):
    """x [n,ih,iw,ic], w [oc,kh,kw,ic/groups] -> [n,oh,ow,oc] float32."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    oc, kh, kw, icg = w.shape
    n, _, _, ic = x.shape
    assert ic == icg * groups and oc % groups == 0
    ocg = oc // groups
    win = _windows(x, kh, kw, strides, dilations, pads)
    _, oh, ow = win.shape[:3]
    y = np.empty((n, oh, ow, oc), dtype=np.float64)
    for g in range(groups):
        p = win[..., g * icg:(g + 1) * icg].reshape(n * oh * ow, kh * kw * icg)
        wg = w[g * ocg:(g + 1) * ocg].reshape(ocg, -1)
        y[..., g * ocg:(g + 1) * ocg] = (p @ wg.T).reshape(n, oh, ow, ocg)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return _clamp(y, out_min, out_max).astype(np.float32)


def depthwise_conv2d(x, w, bias=None, strides=(1, 1), dilations=(1, 1),
                     pads=(0, 0, 0, 0), out_min=-INF, out_max=INF):
    """x [n,ih,iw,ic], w [kh,kw,oc] with oc = m*ic; output channel o reads
    input channel o // m."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    kh, kw, oc = w.shape
    ic = x.shape[3]
    assert oc % ic == 0
    m = oc // ic
    win = _windows(x, kh, kw, strides, dilations, pads)
    win = np.repeat(win, m, axis=-1)  # channel o -> input o // m
    y = np.einsum("nhwyxo,yxo->nhwo", win, w)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return _clamp(y, out_min, out_max).astype(np.float32)


def fully_connected(x, w, bias=None, out_min=-INF, out_max=INF):
    """x [n,k], w [o,k] -> [n,o]."""
    y = np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64).T
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return _clamp(y, out_min, out_max).astype(np.float32)


def hetconv2d(x, w3, w1, part, bias=None, strides=(1, 1), dilations=(1, 1),
              pads=(0, 0, 0, 0), out_min=-INF, out_max=INF):
    """HetConv, part p. w3 [oc,kh,kw,ic/p]: filter j's kh x kw kernel on
    channels (j % p) + i*p; w1 [oc, ic - ic/p]: its 1x1 kernel on the other
    channels in increasing order, read at the window centre."""
    x = np.asarray(x, dtype=np.float64)
    w3 = np.asarray(w3, dtype=np.float64)
    w1 = np.asarray(w1, dtype=np.float64)
    oc, kh, kw, n3 = w3.shape
    n, _, _, ic = x.shape
    p = int(part)
    assert ic % p == 0 and n3 == ic // p and w1.shape == (oc, ic - n3)
    assert kh % 2 == 1 and kw % 2 == 1
    win = _windows(x, kh, kw, strides, dilations, pads)
    _, oh, ow = win.shape[:3]
    centre = win[:, :, :, kh // 2, kw // 2, :]  # zero where in the padding
    y = np.empty((n, oh, ow, oc), dtype=np.float64)
    for j in range(oc):
        first = j % p
        ch3 = np.arange(first, ic, p)
        ch1 = np.array([c for c in range(ic) if c % p != first], dtype=np.intp)
        y3 = np.einsum("nhwyxc,yxc->nhw", win[..., ch3], w3[j])
        y1 = centre[..., ch1] @ w1[j] if ch1.size else 0.0
        y[..., j] = y3 + y1
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    return _clamp(y, out_min, out_max).astype(np.float32)


# ---- binary -----------------------------------------------------------------

def _int_conv(xi, wi, strides, dilations, pads, pad_value):
    """Integer conv, groups = 1: xi [n,ih,iw,ic] int64, wi [oc,kh,kw,ic]."""
    oc, kh, kw, ic = wi.shape
    n = xi.shape[0]
    win = _windows(xi, kh, kw, strides, dilations, pads, pad_value)
    _, oh, ow = win.shape[:3]
    p = win.reshape(n * oh * ow, kh * kw * ic)
    return (p @ wi.reshape(oc, -1).T).reshape(n, oh, ow, oc)


def bconv2d_acc(x_pm1, w_pm1, strides=(1, 1), dilations=(1, 1),
                pads=(0, 0, 0, 0), pad_value=0, groups=1):
    """Binary conv accumulators (int32). x +-1 [n,ih,iw,ic], w +-1
    [oc,kh,kw,ic/groups]. pad_value 0: padding taps contribute 0; 1: they read +1.
    Group g's filters read input channels [g*ic/groups, (g+1)*ic/groups)."""
    assert pad_value in (0, 1)
    xi, wi = _pm1_int(x_pm1), _pm1_int(w_pm1)
    icg, ocg = xi.shape[3] // groups, wi.shape[0] // groups
    acc = np.concatenate([_int_conv(xi[..., g * icg:(g + 1) * icg], wi[g * ocg:(g + 1) * ocg], strides,
                                    dilations, pads, int(pad_value)) for g in range(groups)], axis=3)
    return acc.astype(np.int32)


def bfc_acc(x_pm1, w_pm1):
    """x +-1 [n,k], w +-1 [o,k] -> int32 [n,o]."""
    return (_pm1_int(x_pm1) @ _pm1_int(w_pm1).T).astype(np.int32)


def acc_to_f32(acc, mult=None, bias=None, out_min=-INF, out_max=INF):
    """clamp(mult[c] * float32(acc) + bias[c]), in float32 like the C code."""
    a = np.asarray(acc).astype(np.float32)
    m = np.float32(1) if mult is None else np.asarray(mult, dtype=np.float32)
    b = np.float32(0) if bias is None else np.asarray(bias, dtype=np.float32)
    y = (m * a).astype(np.float32) + b
    return _clamp(y.astype(np.float32), np.float32(out_min),
                  np.float32(out_max)).astype(np.float32)


def acc_to_bits(acc, thr, direction):
    """-1 where (dir > 0 and acc < thr) or (dir < 0 and acc > thr), else +1.
    Returns +-1 int8 with acc's shape (thr/dir broadcast on the last axis)."""
    a = np.asarray(acc).astype(np.int64)
    t = np.asarray(thr).astype(np.int64)
    d = np.asarray(direction).astype(np.int64)
    neg = ((d > 0) & (a < t)) | ((d < 0) & (a > t))
    return np.where(neg, -1, 1).astype(np.int8)


def kbit_codes(x, bits, step):
    """HWGQ codes: clamp(floor(x/step + 0.5f), 0, 2^bits - 1) in float32;
    returned as int64."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        q = np.floor(x / np.float32(step) + np.float32(0.5))
    q = np.where(q > 0, q, np.float32(0))  # NaN -> 0 as in C
    q = np.minimum(q, np.float32(2 ** int(bits) - 1))
    return q.astype(np.int64)


def kbit_conv2d_acc(x, w_pm1, bits, step, strides=(1, 1), dilations=(1, 1),
                    pads=(0, 0, 0, 0)):
    """K-bit activations times +-1 weights, int32 [n,oh,ow,oc]; padding taps
    are code 0."""
    acc = _int_conv(kbit_codes(x, bits, step), _pm1_int(w_pm1), strides,
                    dilations, pads, 0)
    return acc.astype(np.int32)


def horq_conv2d_acc(x, w_pm1, order, strides=(1, 1), dilations=(1, 1),
                    pads=(0, 0, 0, 0)):
    """HORQ residual expansion on each zero-padded im2col patch (tap order
    ky, kx, c), in float32 in the C kernel's order. Returns
    (acc int32 [n,oh,ow,order,oc], beta float32 [n,oh,ow,order])."""
    x = np.asarray(x, dtype=np.float32)
    wi = _pm1_int(w_pm1)
    oc, kh, kw, ic = wi.shape
    win = _windows(x, kh, kw, strides, dilations, pads, 0)
    n, oh, ow = win.shape[:3]
    plen = kh * kw * ic
    r = np.array(win.reshape(n * oh * ow, plen), dtype=np.float32)
    wm = wi.reshape(oc, plen).T
    accs, betas = [], []
    for _ in range(int(order)):
        h = np.where(r < 0, np.int64(-1), np.int64(1))
        # Sequential float32 sum (cumsum accumulates left to right).
        s = np.cumsum(np.abs(r), axis=1, dtype=np.float32)[:, -1]
        b = (s / np.float32(plen)).astype(np.float32)
        r = (r - b[:, None] * h.astype(np.float32)).astype(np.float32)
        accs.append(h @ wm)
        betas.append(b)
    acc = np.stack(accs, axis=1).reshape(n, oh, ow, int(order), oc)
    beta = np.stack(betas, axis=1).reshape(n, oh, ow, int(order))
    return acc.astype(np.int32), beta


def horq_to_f32(acc, beta, mult=None, bias=None, out_min=-INF, out_max=INF):
    """y[o] = clamp(mult[o] * sum_i beta[i]*acc[i][o] + bias[o]), float32,
    summed over i in order. acc [..., order, oc], beta [..., order]."""
    acc = np.asarray(acc)
    beta = np.asarray(beta, dtype=np.float32)
    order = acc.shape[-2]
    s = np.zeros(acc.shape[:-2] + acc.shape[-1:], dtype=np.float32)
    for i in range(order):
        s = (s + beta[..., i, None] * acc[..., i, :].astype(np.float32)
             ).astype(np.float32)
    m = np.float32(1) if mult is None else np.asarray(mult, dtype=np.float32)
    b = np.float32(0) if bias is None else np.asarray(bias, dtype=np.float32)
    y = ((m * s).astype(np.float32) + b).astype(np.float32)
    return _clamp(y, np.float32(out_min), np.float32(out_max)).astype(np.float32)


def horq_conv2d(x, w_pm1, order, mult=None, bias=None, strides=(1, 1),
                dilations=(1, 1), pads=(0, 0, 0, 0), out_min=-INF,
                out_max=INF):
    """HORQ conv, float32 [n,oh,ow,oc]."""
    acc, beta = horq_conv2d_acc(x, w_pm1, order, strides, dilations, pads)
    return horq_to_f32(acc, beta, mult, bias, out_min, out_max)


# ---- pooling ----------------------------------------------------------------

def max_pool2d(x, kernel, strides=None, pads=(0, 0, 0, 0), dilations=(1, 1)):
    """Max over the taps inside the input (padding skipped); 0 for a window
    entirely in the padding."""
    kh, kw = _pair(kernel)
    strides = kernel if strides is None else strides
    x = np.asarray(x, dtype=np.float32)
    win = _windows(x, kh, kw, strides, dilations, pads, -np.inf)
    y = win.max(axis=(3, 4))
    inside = _inside_mask(x.shape[:3], kh, kw, strides, dilations, pads)
    any_in = inside.any(axis=(3, 4))
    return np.where(any_in, y, np.float32(0)).astype(np.float32)


def avg_pool2d(x, kernel, strides=None, pads=(0, 0, 0, 0),
               count_include_pad=False, dilations=(1, 1)):
    """Sum of the taps inside / (kh*kw if count_include_pad else the number
    of taps inside); 0 for a window entirely in the padding."""
    kh, kw = _pair(kernel)
    strides = kernel if strides is None else strides
    x = np.asarray(x, dtype=np.float64)
    win = _windows(x, kh, kw, strides, dilations, pads, 0.0)
    s = win.sum(axis=(3, 4))
    if count_include_pad:
        cnt = np.full(s.shape[1:3], kh * kw, dtype=np.float64)
    else:
        inside = _inside_mask(x.shape[:3], kh, kw, strides, dilations, pads)
        cnt = inside.sum(axis=(3, 4))[0, :, :, 0].astype(np.float64)
    cnt = cnt[None, :, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(cnt > 0, s / np.maximum(cnt, 1), 0.0)
    return y.astype(np.float32)


def bmax_pool2d(x_pm1, kernel, strides=None, pads=(0, 0, 0, 0),
                dilations=(1, 1)):
    """Max of +-1 values over the taps inside (AND of the packed bits); +1
    for a window entirely in the padding. Returns +-1 float32."""
    kh, kw = _pair(kernel)
    strides = kernel if strides is None else strides
    xi = _pm1_int(x_pm1)
    win = _windows(xi, kh, kw, strides, dilations, pads, -2)
    y = win.max(axis=(3, 4))
    return np.where(y == -1, np.float32(-1), np.float32(1))


def global_avg_pool(x):
    """[n,h,w,c] -> [n,1,1,c] mean over h, w."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=(1, 2), keepdims=True).astype(np.float32)


# ---- elementwise and data movement ------------------------------------------

def add(a, b, out_min=-INF, out_max=INF):
    y = np.asarray(a, dtype=np.float32) + np.asarray(b, dtype=np.float32)
    return _clamp(y, np.float32(out_min), np.float32(out_max)).astype(np.float32)


def clamp(x, lo, hi):
    x = np.asarray(x, dtype=np.float32)
    return _clamp(x, np.float32(lo), np.float32(hi)).astype(np.float32)


def relu(x):
    return clamp(x, 0.0, INF)


def relu6(x):
    return clamp(x, 0.0, 6.0)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    return clamp(x, min_val, max_val)


def prelu(x, slope):
    """x >= 0 ? x : slope[c] * x (slope on the last axis)."""
    x = np.asarray(x, dtype=np.float32)
    s = np.asarray(slope, dtype=np.float32)
    return np.where(x >= 0, x, s * x).astype(np.float32)


def channel_mean(x):
    """Mean over the last axis, summed in index order in float32 (as the runtime does)."""
    x = np.asarray(x, dtype=np.float32)
    acc = np.zeros(x.shape[:-1], np.float32)
    for i in range(x.shape[-1]):
        acc = (acc + x[..., i]).astype(np.float32)
    return (acc / np.float32(x.shape[-1])).astype(np.float32)[..., None]


def affine(x, scale, bias, out_min=-INF, out_max=INF):
    """clamp(x * scale[c] + bias[c]) in float32."""
    x = np.asarray(x, dtype=np.float32)
    s = np.float32(1) if scale is None else np.asarray(scale, dtype=np.float32)
    b = np.float32(0) if bias is None else np.asarray(bias, dtype=np.float32)
    y = ((x * s).astype(np.float32) + b).astype(np.float32)
    return _clamp(y, np.float32(out_min), np.float32(out_max)).astype(np.float32)


def softmax(x):
    """Softmax over the last axis: exp(x - max) / sum."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def transpose(x, perm):
    """Output axis i is input axis perm[i]."""
    return np.ascontiguousarray(np.transpose(np.asarray(x), perm))


def channel_shuffle(x, groups):
    """y[..., k*groups + j] = x[..., j*(c/groups) + k]."""
    x = np.asarray(x)
    c = x.shape[-1]
    assert c % groups == 0
    y = x.reshape(x.shape[:-1] + (groups, c // groups))
    return np.ascontiguousarray(np.swapaxes(y, -1, -2)).reshape(x.shape)


def concat(xs, axis):
    return np.concatenate([np.asarray(a) for a in xs], axis=axis)


def quantize_i8(x, scale, zero_point):
    """clamp(round_half_away_from_zero(float32(x / scale)) + zp, -128, 127);
    NaN quantizes like 0."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        v = (x / np.float32(scale)).astype(np.float64)
    # Exact in float64 for every float32 value: half away from zero.
    r = np.trunc(v + np.copysign(0.5, v))
    r = np.where(np.isnan(r), 0.0, r) + float(zero_point)
    return np.clip(r, -128, 127).astype(np.int8)


def dequantize_i8(q, scale, zero_point, axis=None):
    """(q - zp) * scale in float32; per-channel along ``axis`` when scale /
    zero_point are arrays, per-tensor when axis is None."""
    q = np.asarray(q)
    if axis is None:
        s = np.float32(np.asarray(scale, dtype=np.float32).reshape(()))
        z = np.int64(np.asarray(zero_point).reshape(()))
    else:
        shape = [1] * q.ndim
        shape[axis] = q.shape[axis]
        s = np.asarray(scale, dtype=np.float32).reshape(shape)
        z = np.asarray(zero_point, dtype=np.int64).reshape(shape)
    return ((q.astype(np.int64) - z).astype(np.float32) * s).astype(np.float32)


# ---- int8 layers (TFLite's quantized arithmetic; ref.h "int8 layers") ---------

def quantize_multiplier(m):
    """TFLite QuantizeMultiplier: m = q * 2**(shift - 31), q in [2**30, 2**31)."""
    import math
    if m == 0.0:
        return 0, 0
    f, e = math.frexp(float(m))
    fixed = int(math.floor(abs(f) * 2.0**31 + 0.5)) * (1 if f >= 0 else -1)  # half away from zero
    if fixed == 2**31:
        fixed //= 2
        e += 1
    if e < -31:
        return 0, 0
    return fixed, e


def mul_by_quantized_multiplier(acc, q, shift):
    """TFLite MultiplyByQuantizedMultiplier on int64 arrays holding int32 values;
    q and shift may be per-channel arrays broadcast against acc."""
    acc = np.asarray(acc, dtype=np.int64)
    q = np.asarray(q, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    a = ((acc << left) + 2**31) % 2**32 - 2**31  # int32 wrap of x * (1 << left)
    ab = a * q
    t = ab + np.where(ab >= 0, 2**30, 1 - 2**30)
    hi = np.where(t >= 0, t // 2**31, -((-t) // 2**31))  # truncate toward zero
    mask = (np.int64(1) << right) - 1
    rem = hi & mask
    thr = (mask >> 1) + (hi < 0)
    return (hi >> right) + (rem > thr)


def q8_act_range(out_min, out_max, y_scale, y_zp):
    """TFLite CalculateActivationRangeQuantized (round half away, in float32)."""
    def q(v):
        r = np.float32(v) / np.float32(y_scale)
        r = np.sign(r) * np.floor(np.abs(r) + np.float32(0.5))
        return int(np.clip(r + y_zp, -128, 127))
    lo = -128 if out_min == -INF else q(out_min)
    hi = 127 if out_max == INF else q(out_max)
    return lo, hi


def _q8_finish(acc, mult, shift, y_zp, lo, hi):
    return np.clip(mul_by_quantized_multiplier(acc, mult, shift) + y_zp, lo, hi).astype(np.int8)


def _q8_multipliers(x_scale, w_scale, y_scale, oc):
    ws = np.broadcast_to(np.asarray(w_scale, dtype=np.float32), (oc,))
    xs, ys = np.float64(np.float32(x_scale)), np.float64(np.float32(y_scale))
    qs = [quantize_multiplier(float(xs * np.float64(s) / ys)) for s in ws]
    return np.array([a for a, _ in qs], np.int64), np.array([b for _, b in qs], np.int64)


def conv2d_i8(x, x_scale, x_zp, w, w_scale, bias, y_scale, y_zp, strides=(1, 1), dilations=(1, 1),
              pads=(0, 0, 0, 0), groups=1, out_min=-INF, out_max=INF, w_zp=0):
    """int8 NHWC x, int8 OHWI w (per-channel symmetric, or one scale and zero point w_zp), int32 bias -> int8."""
    xi = np.asarray(x, np.int64) - int(x_zp)
    oc, kh, kw, icg = w.shape
    n = x.shape[0]
    ocg = oc // groups
    win = _windows(xi, kh, kw, strides, dilations, pads, 0)
    _, oh, ow = win.shape[:3]
    acc = np.empty((n, oh, ow, oc), np.int64)
    wi = np.asarray(w, np.int64) - int(w_zp)
    for g in range(groups):
        p = win[..., g * icg:(g + 1) * icg].reshape(n * oh * ow, kh * kw * icg)
        acc[..., g * ocg:(g + 1) * ocg] = (p @ wi[g * ocg:(g + 1) * ocg].reshape(ocg, -1).T).reshape(n, oh, ow, ocg)
    if bias is not None:
        acc += np.asarray(bias, np.int64)
    mult, shift = _q8_multipliers(x_scale, w_scale, y_scale, oc)
    return _q8_finish(acc, mult, shift, y_zp, *q8_act_range(out_min, out_max, y_scale, y_zp))


def depthwise_conv2d_i8(x, x_scale, x_zp, w, w_scale, bias, y_scale, y_zp, strides=(1, 1), dilations=(1, 1),
                        pads=(0, 0, 0, 0), out_min=-INF, out_max=INF, w_zp=0):
    xi = np.asarray(x, np.int64) - int(x_zp)
    kh, kw, oc = w.shape
    m = oc // x.shape[3]
    win = np.repeat(_windows(xi, kh, kw, strides, dilations, pads, 0), m, axis=-1)
    acc = np.einsum("nhwyxo,yxo->nhwo", win, np.asarray(w, np.int64) - int(w_zp))
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    mult, shift = _q8_multipliers(x_scale, w_scale, y_scale, oc)
    return _q8_finish(acc, mult, shift, y_zp, *q8_act_range(out_min, out_max, y_scale, y_zp))


def fully_connected_i8(x, x_scale, x_zp, w, w_scale, bias, y_scale, y_zp, out_min=-INF, out_max=INF, w_zp=0):
    acc = (np.asarray(x, np.int64) - int(x_zp)) @ (np.asarray(w, np.int64) - int(w_zp)).T
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    mult, shift = _q8_multipliers(x_scale, w_scale, y_scale, w.shape[0])
    return _q8_finish(acc, mult, shift, y_zp, *q8_act_range(out_min, out_max, y_scale, y_zp))


def add_i8(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, out_min=-INF, out_max=INF):
    """TFLite's quantized add (left shift 20, both inputs rescaled to twice the larger scale)."""
    twice = 2.0 * max(float(np.float32(a_scale)), float(np.float32(b_scale)))
    ma, sa = quantize_multiplier(float(np.float32(a_scale)) / twice)
    mb, sb = quantize_multiplier(float(np.float32(b_scale)) / twice)
    my, sy = quantize_multiplier(twice / (2.0**20 * float(np.float32(y_scale))))
    va = (np.asarray(a, np.int64) - int(a_zp)) * 2**20
    vb = (np.asarray(b, np.int64) - int(b_zp)) * 2**20
    s = mul_by_quantized_multiplier(va, ma, sa) + mul_by_quantized_multiplier(vb, mb, sb)
    return _q8_finish(s, my, sy, y_zp, *q8_act_range(out_min, out_max, y_scale, y_zp))


def max_pool2d_i8(x, kernel, strides=None, pads=(0, 0, 0, 0)):
    kh, kw = _pair(kernel)
    win = _windows(np.asarray(x, np.int16), kh, kw, kernel if strides is None else strides, (1, 1), pads, -1000)
    return win.max(axis=(3, 4)).astype(np.int8)


def avg_pool2d_i8(x, x_zp, kernel, strides=None, pads=(0, 0, 0, 0), count_include_pad=False, rounding="away"):
    """TFLite's integer average: (sum +- count/2) / count, truncated (half away from zero); rounding
    'up': TFLite's uint8 kernel, (u + count/2) // count on the codes u = x + 128 >= 0."""
    kh, kw = _pair(kernel)
    strides = kernel if strides is None else strides
    xi = np.asarray(x, np.int64)
    if count_include_pad:
        s = _windows(xi, kh, kw, strides, (1, 1), pads, int(x_zp)).sum(axis=(3, 4))
        cnt = np.full(s.shape, kh * kw, np.int64)
    else:
        s = _windows(xi, kh, kw, strides, (1, 1), pads, 0).sum(axis=(3, 4))
        cnt = np.broadcast_to(_inside_mask(x.shape[:3], kh, kw, strides, (1, 1), pads).sum(axis=(3, 4)), s.shape)
    if rounding == "up":   # literally the uint8 kernel: shift to codes >= 0, round, shift back
        q = (s + 128 * cnt + cnt // 2) // cnt - 128
        return np.clip(q, -128, 127).astype(np.int8)
    num = np.where(s > 0, s + cnt // 2, s - cnt // 2)
    q = np.where(num >= 0, num // cnt, -((-num) // cnt))
    return np.clip(q, -128, 127).astype(np.int8)


def global_avg_pool_i8(x, x_scale, x_zp, y_scale, y_zp):
    n, h, w, c = x.shape
    acc = (np.asarray(x, np.int64) - int(x_zp)).sum(axis=(1, 2), keepdims=True)
    m, sh = quantize_multiplier(float(np.float32(x_scale)) / (float(np.float32(y_scale)) * h * w))
    return _q8_finish(acc, m, sh, y_zp, -128, 127)
