"""Sign binarizers and their straight-through gradients.

Every binarizer here maps x >= 0 to +1 and x < 0 to -1 (sign(0) = +1), the
convention of the packed bit format (bit 0 = +1) and of the C runtime. They
differ only in the gradient they hand back, which is where the papers differ.
"""
from __future__ import annotations

import torch


def binary_sign(x: torch.Tensor) -> torch.Tensor:
    """±1 with sign(0) = +1; plain ops only, so torch.export sees ge + where."""
    out = torch.where(x >= 0, 1.0, -1.0)
    # torch.where with two Python scalars yields the default dtype; cast only
    # when it differs so float32 graphs carry no extra node.
    return out if out.dtype == x.dtype else out.to(x.dtype)


class SignSTE(torch.autograd.Function):
    """sign with the hard-tanh straight-through estimator (BinaryNet, XNOR-Net).

    d sign/dx ≈ 1 for |x| <= 1, 0 outside: the gradient is cancelled where
    the input is saturated, which keeps latent values from drifting away.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return binary_sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class ApproxSign(torch.autograd.Function):
    """Bi-Real Net's ApproxSign: sign forward, piecewise-polynomial backward.

    The backward is the derivative of the piecewise quadratic that fits sign:
    2 + 2x on [-1, 0), 2 - 2x on [0, 1), 0 elsewhere. It is a tighter fit to
    sign than hard-tanh, so the gradient mismatch is smaller.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return binary_sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        slope = torch.where(x < 0, 2 + 2 * x, 2 - 2 * x)
        inside = (x >= -1) & (x < 1)
        return grad * torch.where(inside, slope, torch.zeros_like(slope))


class SignIdentitySTE(torch.autograd.Function):
    """sign with a plain identity gradient (BinaryConnect's weight binarizer).

    BinaryConnect keeps the latent weights in [-1, 1] by clipping after each
    update instead of cancelling the gradient, so the backward is identity.
    """

    @staticmethod
    def forward(ctx, x):
        return binary_sign(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    return SignSTE.apply(x)


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    return ApproxSign.apply(x)


def sign_identity_ste(x: torch.Tensor) -> torch.Tensor:
    return SignIdentitySTE.apply(x)
