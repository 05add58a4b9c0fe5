"""BinaryConnect weight binarization (Courbariaux, Bengio, David 2015).

Deterministic: w_b = sign(w). Stochastic: w_b = +1 with probability
hard_sigmoid(w) = clip((w + 1) / 2, 0, 1), else -1. Both pass the gradient
straight through to the real-valued weights, which the optimiser updates and
`clip_weights_` then clips back to [-1, 1].
"""
from __future__ import annotations

import torch

from .sign import binary_sign, sign_identity_ste


def hard_sigmoid(w: torch.Tensor) -> torch.Tensor:
    return ((w + 1) / 2).clamp(0, 1)


class StochasticBinarize(torch.autograd.Function):
    """+1 with probability hard_sigmoid(w); identity gradient."""

    @staticmethod
    def forward(ctx, w, noise):
        # noise ~ U[0, 1) is passed in (not drawn here) so tests can fix it and
        # training stays reproducible under torch.manual_seed.
        return torch.where(noise < hard_sigmoid(w), 1.0, -1.0).to(w.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def binaryconnect_det(w: torch.Tensor) -> torch.Tensor:
    return sign_identity_ste(w)


def binaryconnect_stoch(w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    if noise is None:
        noise = torch.rand_like(w)
    return StochasticBinarize.apply(w, noise)


def binaryconnect_eval(w: torch.Tensor, stochastic_eval: str) -> torch.Tensor:
    """Inference weights of a BinaryConnect layer.

    "sign" is what a binary deployment runs; "real" is how the paper
    evaluated its stochastic models (binarization as a regulariser only).
    """
    if stochastic_eval == "real":
        return w
    if stochastic_eval == "sign":
        return binary_sign(w)
    raise ValueError(f"stochastic_eval must be 'sign' or 'real', got {stochastic_eval!r}")


@torch.no_grad()
def clip_weights_(w: torch.Tensor, bound: float = 1.0) -> torch.Tensor:
    """Keep latent weights where the binarizer still responds to them."""
    return w.clamp_(-bound, bound)
