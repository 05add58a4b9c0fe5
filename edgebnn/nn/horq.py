"""HORQ: high-order residual quantization of inputs (Li et al. 2017).

Computed on each im2col patch (one output position), as the paper does and
as the C runtime does: r = the zero-padded patch (all kh·kw·C values); for
i = 1..K: h_i = sign(r), β_i = mean|r| over the patch, r -= β_i·h_i. The
convolution is then Σ_i β_i·(h_i · W_q): K binary passes on the same packed
weights. Note that padding taps are real zeros of r, so they binarize to
sign(0) = +1 in h_1 (and to ±1 in later orders), exactly as written above.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .sign import binary_sign


def residual_planes(r: torch.Tensor, order: int, dim: int):
    """Yield (β_i, h_i) for i = 1..order; β_i is reduced over `dim`."""
    for _ in range(order):
        h = binary_sign(r)
        beta = r.abs().mean(dim=dim, keepdim=True)
        yield beta, h
        r = r - beta * h


class HorqApprox(torch.autograd.Function):
    """Σ_i β_i·h_i with a straight-through (identity) gradient to the input."""

    @staticmethod
    def forward(ctx, r, order: int, dim: int):
        return sum(beta * h for beta, h in residual_planes(r, order, dim))

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


def horq_approx(r: torch.Tensor, order: int, dim: int = -1) -> torch.Tensor:
    if order < 1:
        raise ValueError(f"HORQ order must be >= 1, got {order}")
    if torch.is_grad_enabled() and r.requires_grad:
        return HorqApprox.apply(r, order, dim)
    return sum(beta * h for beta, h in residual_planes(r, order, dim))


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def horq_conv2d(x, weight, order: int, stride=1, padding=0, pad_value: float = 0.0):
    """Convolution of the order-K HORQ approximation of x's patches with `weight`.

    Since Σ_i β_i·(h_i·w) = (Σ_i β_i·h_i)·w, we approximate each patch and do
    one matmul; the runtime does the K passes, with the same result.
    """
    kh, kw = weight.shape[-2:]
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    if pad_value != 0 and (ph or pw):
        x = F.pad(x, (pw, pw, ph, ph), value=pad_value)
        ph = pw = 0
    patches = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))  # (N, C·kh·kw, L)
    approx = horq_approx(patches, order, dim=1)
    out = weight.flatten(1) @ approx  # (O, C·kh·kw) @ (N, C·kh·kw, L) -> (N, O, L)
    h_out = (x.shape[2] + 2 * ph - kh) // sh + 1
    w_out = (x.shape[3] + 2 * pw - kw) // sw + 1
    return out.view(x.shape[0], weight.shape[0], h_out, w_out)


def horq_linear(x, weight, order: int):
    """Fully-connected HORQ: the whole input vector is one patch."""
    return horq_approx(x, order, dim=-1) @ weight.t()
