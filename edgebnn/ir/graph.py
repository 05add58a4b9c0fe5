"""The typed graph every front-end produces and the packed-file writer consumes."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .dtypes import DType, storage_bytes
from .ops import Attr, OpType

MAX_DIMS = 6


@dataclass
class Quant:
    """Affine int8 quantization: real = (q - zero_point) * scale, per tensor or per channel."""
    scale: np.ndarray          # float32, shape () or (C,)
    zero_point: np.ndarray     # int32, same shape as scale
    axis: int = -1             # channel axis when per-channel

    @property
    def per_channel(self) -> bool:
        return np.ndim(self.scale) == 1


@dataclass
class Tensor:
    name: str
    dtype: DType
    shape: tuple[int, ...]
    data: np.ndarray | None = None      # constants only; BIT1 data is already packed uint64
    quant: Quant | None = None
    io_layout: str = "NHWC"             # what users feed/read at the boundary: NHWC or NCHW

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def nbytes(self) -> int:
        return storage_bytes(self.dtype, self.shape)


@dataclass
class Op:
    type: OpType
    inputs: list[int | None]          # tensor indices; None marks an absent optional input
    outputs: list[int]
    attrs: dict[Attr, tuple] = field(default_factory=dict)
    name: str = ""


@dataclass
class Graph:
    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    def producer_of(self) -> dict[int, int]:
        return {t: i for i, op in enumerate(self.ops) for t in op.outputs}

    def consumers_of(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i, op in enumerate(self.ops):
            for t in op.inputs:
                if t is not None:
                    out.setdefault(t, []).append(i)
        return out

    def copy(self) -> "Graph":
        return dataclasses.replace(self, tensors=list(self.tensors), ops=list(self.ops),
                                   inputs=list(self.inputs), outputs=list(self.outputs),
                                   metadata=dict(self.metadata))
