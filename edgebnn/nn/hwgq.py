"""HWGQ: half-wave Gaussian quantization of activations (Cai et al. 2017).

Forward (k bits): Q(x) = Δ·clamp(floor(x/Δ + 0.5), 0, 2^k - 1), a uniform
quantizer of the ReLU's positive half. Δ is fixed offline as the step that
minimises the mean squared error for x ~ N(0, 1) (BatchNorm makes the
pre-activations roughly unit Gaussian), so nothing is learned.

Backward variants for Q′ (the forward is always Q):
  "relu"       vanilla ReLU: 1 for x > 0
  "clipped"    1 for 0 < x <= q_max, else 0
  "log_tailed" 1 for 0 < x <= q_max, 1/(x - τ) beyond, τ = q_max - 1
               (the derivative of q_max + log(x - τ), continuous at q_max)
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn

BACKWARDS = ("relu", "clipped", "log_tailed")


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


@lru_cache(maxsize=None)
def gaussian_step(bits: int, iterations: int = 1000, tol: float = 1e-12) -> float:
    """Optimal uniform step Δ for the positive half of N(0, 1), Lloyd style.

    Alternate the two optimality conditions of a uniform quantizer with levels
    i·Δ (i = 0..L-1): the cells are the nearest-level regions (thresholds at
    (i - 1/2)·Δ), and given the cells the best Δ is the least-squares fit
    Δ = Σ_i i·E[x; cell i] / Σ_i i²·P(cell i). Gaussian moments are closed
    form: P(a < x < b) = Φ(b) - Φ(a), E[x; a < x < b] = φ(a) - φ(b).
    For 2 bits this gives Δ ≈ 0.5380 (the paper's 0.538).
    """
    levels = 2**bits
    delta = 1.0
    for _ in range(iterations):
        num = den = 0.0
        for i in range(1, levels):
            lo = (i - 0.5) * delta
            hi = (i + 0.5) * delta if i < levels - 1 else math.inf
            p = _cdf(hi) - _cdf(lo) if hi != math.inf else 1 - _cdf(lo)
            m = _phi(lo) - (_phi(hi) if hi != math.inf else 0.0)
            num += i * m
            den += i * i * p
        new = num / den
        if abs(new - delta) < tol:
            return new
        delta = new
    return delta


def hwgq_quantize(x: torch.Tensor, step: float, bits: int) -> torch.Tensor:
    return step * torch.clamp(torch.floor(x / step + 0.5), 0, 2**bits - 1)


class HwgqFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, step: float, bits: int, backward: str):
        ctx.save_for_backward(x)
        ctx.q_max = step * (2**bits - 1)
        ctx.backward_kind = backward
        return hwgq_quantize(x, step, bits)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * hwgq_grad(x, ctx.q_max, ctx.backward_kind), None, None, None


def hwgq_grad(x: torch.Tensor, q_max: float, backward: str) -> torch.Tensor:
    """The surrogate derivative Q′(x) of each backward variant."""
    positive = (x > 0).to(x.dtype)
    if backward == "relu":
        return positive
    inside = positive * (x <= q_max).to(x.dtype)
    if backward == "clipped":
        return inside
    if backward == "log_tailed":
        tau = q_max - 1
        tail = (x > q_max).to(x.dtype) / (x - tau).clamp_min(1.0)
        return inside + tail
    raise ValueError(f"unknown HWGQ backward {backward!r}; use one of {BACKWARDS}")


class HWGQ(nn.Module):
    """k-bit half-wave Gaussian quantizer; replaces a ReLU after BatchNorm."""

    def __init__(self, bits: int = 2, backward: str = "clipped"):
        super().__init__()
        if backward not in BACKWARDS:
            raise ValueError(f"unknown HWGQ backward {backward!r}; use one of {BACKWARDS}")
        self.bits = bits
        self.backward = backward
        self.step = gaussian_step(bits)

    @property
    def q_max(self) -> float:
        return self.step * (2**self.bits - 1)

    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            return HwgqFunction.apply(x, self.step, self.bits, self.backward)
        return hwgq_quantize(x, self.step, self.bits)

    def extra_repr(self):
        return f"bits={self.bits}, step={self.step:.4f}, backward={self.backward}"
