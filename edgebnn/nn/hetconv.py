"""HetConv: heterogeneous kernels (Singh et al. 2019).

With part P, filter j applies its kh×kw kernel to the input channels
c ≡ j (mod P) (the "shifted" arrangement: every channel gets a large kernel
from some filters) and a 1×1 kernel to the other C - C/P channels.

Parameters:
  w3 [out, C/P, kh, kw]  index i <-> input channel (j % P) + i·P
  w1 [out, C - C/P]      the remaining channels of filter j, increasing order

The forward never builds the dense zero-filled kernel. All filters with the
same j % P = g share one channel subset S_g = {g, g+P, ...}, so
  * the kh×kw part is ONE grouped conv (groups = P) on the input with its
    channels reordered to [S_0 | S_1 | ...] (a reshape + transpose), and
  * the 1×1 part is ONE grouped 1×1 conv on the gathered complements
    [C∖S_0 | C∖S_1 | ...] of the (strided) input.
Their sum is in group-major filter order and a reshape + transpose restores
filter order j. `dense_weight()` gives the equivalent dense kernel for checks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class HetConv2d(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        part: int = 4,
        stride: int = 1,
        bias: bool = False,
    ):
        super().__init__()
        if part < 1 or in_channels % part or out_channels % part:
            raise ValueError(
                f"HetConv part P={part} must divide in_channels={in_channels} and out_channels={out_channels}"
            )
        if kernel_size % 2 == 0:
            raise ValueError("HetConv needs an odd kernel so that the 1×1 taps sit at its centre")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.part = part
        self.stride = stride
        # "same" padding: the 1×1 part then lines up with the centre tap.
        self.padding = kernel_size // 2
        big = in_channels // part
        self.w3 = nn.Parameter(torch.empty(out_channels, big, kernel_size, kernel_size))
        self.w1 = nn.Parameter(torch.empty(out_channels, in_channels - big))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.register_buffer("complement_index", self._complement_index(), persistent=False)
        self.reset_parameters()

    def _complement_index(self) -> torch.Tensor:
        """Flattened [C∖S_0 | C∖S_1 | ...], each in increasing channel order."""
        rows = [[c for c in range(self.in_channels) if c % self.part != g] for g in range(self.part)]
        return torch.tensor(rows, dtype=torch.long).flatten()

    def reset_parameters(self):
        # nn.Conv2d's default (kaiming_uniform_ with a=√5 is U(±1/√fan_in)),
        # with the fan-in of the taps a filter really has.
        fan_in = self.w3[0].numel() + self.w1.shape[1]
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.w3, -bound, bound)
        nn.init.uniform_(self.w1, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def _group_major(self, w: torch.Tensor) -> torch.Tensor:
        """Reorder filters j = m·P + g to group-major order [g = 0 | g = 1 | ...]."""
        p = self.part
        return w.reshape(-1, p, *w.shape[1:]).transpose(0, 1).reshape(w.shape)

    def forward(self, x):
        n, c, h, w = x.shape
        p = self.part
        # Channels c = i·P + g  ->  position g·(C/P) + i: the blocks S_0 | S_1 | ...
        x_sub = x.reshape(n, c // p, p, h, w).transpose(1, 2).reshape(n, c, h, w)
        y = F.conv2d(x_sub, self._group_major(self.w3), None, self.stride, self.padding, groups=p)
        x_strided = x[:, :, :: self.stride, :: self.stride]
        x_rest = x_strided.index_select(1, self.complement_index)
        w1 = self._group_major(self.w1)[:, :, None, None]
        y = y + F.conv2d(x_rest, w1, None, 1, 0, groups=p)
        # Group-major (g, m) back to filter order j = m·P + g.
        spatial = y.shape[2:]
        y = y.reshape(n, p, self.out_channels // p, *spatial).transpose(1, 2).reshape(n, self.out_channels, *spatial)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    @torch.no_grad()
    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense [out, C, k, k] kernel (zeros included); for checks only."""
        k, p = self.kernel_size, self.part
        dense = self.w3.new_zeros(self.out_channels, self.in_channels, k, k)
        for j in range(self.out_channels):
            g = j % p
            big = list(range(g, self.in_channels, p))
            rest = [ch for ch in range(self.in_channels) if ch % p != g]
            dense[j, big] = self.w3[j]
            dense[j, rest, k // 2, k // 2] = self.w1[j]
        return dense

    def macs_per_position(self) -> int:
        """Multiply-accumulates per output pixel: N·(C·K²/P + C - C/P)."""
        big = self.in_channels // self.part
        return self.out_channels * (big * self.kernel_size**2 + self.in_channels - big)

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, part={self.part}, "
            f"stride={self.stride}, bias={self.bias is not None}"
        )
