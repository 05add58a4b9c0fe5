"""ReActNet's learnable activations (Liu et al. 2020).

RSign:  y = sign(x - α_c), a learnable per-channel threshold; the gradient
        uses Bi-Real's ApproxSign, as ReActNet does.
RPReLU: y = PReLU_c(x - γ_c) + ζ_c, learnable per-channel shifts around a
        per-channel PReLU.
Channels are dimension 1 (N, C, ...), so both work after Conv2d and Linear.
"""
from __future__ import annotations

import torch
from torch import nn

from .sign import approx_sign


def _per_channel(param: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return param.view(1, -1, *([1] * (x.dim() - 2)))


class RSign(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.threshold = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return approx_sign(x - _per_channel(self.threshold, x))


class RPReLU(nn.Module):
    def __init__(self, channels: int, init_slope: float = 0.25):
        super().__init__()
        self.shift_in = nn.Parameter(torch.zeros(channels))
        self.slope = nn.Parameter(torch.full((channels,), init_slope))
        self.shift_out = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        z = x - _per_channel(self.shift_in, x)
        z = torch.where(z >= 0, z, _per_channel(self.slope, x) * z)
        return z + _per_channel(self.shift_out, x)
