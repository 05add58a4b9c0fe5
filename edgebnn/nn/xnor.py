"""XNOR-Net scales (Rastegari et al. 2016).

Weights: W ≈ α·sign(W) with α = mean|W| per output filter.
Inputs:  X ≈ β·sign(X); for a convolution the per-position scales form
K = box_filter(mean_c |X|), taken at the convolution's own stride and padding,
so that conv(X, W) ≈ conv(sign(X), sign(W)) ⊙ K · α.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .sign import binary_sign


def filter_mean_abs(w: torch.Tensor) -> torch.Tensor:
    """α: mean |W| over everything but the output dimension, broadcastable to W."""
    dims = tuple(range(1, w.dim()))
    return w.abs().mean(dim=dims, keepdim=True)


class XnorWeight(torch.autograd.Function):
    """α·sign(W) with the paper's gradient ∂C/∂W = ∂C/∂W̃ · (1/n + α·1_{|W|<=1}).

    The paper's expression keeps only the diagonal of the Jacobian of
    α(W)·sign(W); we follow it rather than autograd's full Jacobian.
    """

    @staticmethod
    def forward(ctx, w):
        alpha = filter_mean_abs(w)
        ctx.save_for_backward(w, alpha)
        return binary_sign(w) * alpha

    @staticmethod
    def backward(ctx, grad):
        w, alpha = ctx.saved_tensors
        n = w[0].numel()
        return grad * (1.0 / n + alpha * (w.abs() <= 1).to(grad.dtype))


def xnor_weight(w: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and w.requires_grad:
        return XnorWeight.apply(w)
    # Plain ops outside training: the same values, and a graph the converter
    # folds to a constant (parameter-only subgraph).
    return binary_sign(w) * filter_mean_abs(w)


def xnor_input_scale_conv(x: torch.Tensor, kernel_size, stride, padding) -> torch.Tensor:
    """K (N, 1, H_out, W_out): box filter (1/(kh·kw), zero padded) of mean_c |X|."""
    a = x.abs().mean(dim=1, keepdim=True)
    return F.avg_pool2d(a, kernel_size, stride, padding, count_include_pad=True)


def xnor_input_scale_linear(x: torch.Tensor) -> torch.Tensor:
    """β (N, 1) for a fully-connected layer: mean |x| over the input features."""
    return x.abs().mean(dim=-1, keepdim=True)
