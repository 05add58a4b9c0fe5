"""Element types of the packed format and their storage rules."""
from __future__ import annotations

import enum
import math

import numpy as np


class DType(enum.IntEnum):
    F32 = 1
    I32 = 2
    I8 = 3
    U8 = 4
    BIT1 = 5  # +-1 packed 64 to a uint64 word along the innermost axis, bit 1 = -1

    @classmethod
    def parse(cls, value: "DType | str") -> "DType":
        if isinstance(value, DType):
            return value
        try:
            return _NAMES[str(value).lower()]
        except KeyError:
            raise ValueError(f"unknown dtype {value!r}; expected one of {sorted(_NAMES)}") from None

    @property
    def short(self) -> str:
        return self.name.lower()

    @property
    def numpy(self) -> np.dtype:
        if self is DType.BIT1:
            return np.dtype("<u8")
        return _NUMPY[self]


_NAMES = {"f32": DType.F32, "float32": DType.F32, "i32": DType.I32, "int32": DType.I32,
          "i8": DType.I8, "int8": DType.I8, "u8": DType.U8, "uint8": DType.U8,
          "bit1": DType.BIT1, "bit": DType.BIT1}
_NUMPY = {DType.F32: np.dtype("<f4"), DType.I32: np.dtype("<i4"),
          DType.I8: np.dtype("i1"), DType.U8: np.dtype("u1")}


def dtype_of_array(a: np.ndarray) -> DType:
    for dt, npdt in _NUMPY.items():
        if a.dtype == npdt:
            return dt
    raise ValueError(f"arrays of numpy dtype {a.dtype} cannot be stored; use float32, int32, int8 or uint8")


def words(c: int) -> int:
    return (c + 63) // 64


def storage_bytes(dtype: DType, shape: tuple[int, ...]) -> int:
    """Bytes a dense tensor takes: BIT1 pads each innermost row to whole words."""
    if dtype is DType.BIT1:
        if not shape:
            return 8
        return math.prod(shape[:-1]) * words(shape[-1]) * 8
    return math.prod(shape) * dtype.numpy.itemsize


def pack_bits(pm1: np.ndarray) -> np.ndarray:
    """+-1 (or any sign-carrying) array -> uint64 words along the last axis, bit 1 where value < 0."""
    a = np.asarray(pm1)
    if a.ndim == 0:
        a = a.reshape(1)
    c = a.shape[-1]
    bits = (a < 0).reshape(-1, c)
    padded = np.zeros((bits.shape[0], words(c) * 64), dtype=np.uint8)
    padded[:, :c] = bits
    packed = np.packbits(padded.reshape(bits.shape[0], -1, 8), axis=-1, bitorder="little")
    out = packed.reshape(bits.shape[0], -1).view("<u8")
    return out.reshape(a.shape[:-1] + (words(c),))


def unpack_bits(packed: np.ndarray, c: int) -> np.ndarray:
    """uint64 words -> +-1 float32 array whose last axis has c elements."""
    p = np.ascontiguousarray(packed, dtype="<u8")
    rows = p.reshape(-1, p.shape[-1])
    bits = np.unpackbits(rows.view(np.uint8).reshape(rows.shape[0], -1), axis=-1, bitorder="little")
    vals = np.where(bits[:, :c] == 1, -1.0, 1.0).astype(np.float32)
    return vals.reshape(p.shape[:-1] + (c,))


def f32_to_ord(x) -> np.ndarray:
    """float32 -> int64 keys in the same order (-0.0 just below +0.0): bisection over float32
    values, as the converters do to find exact sign thresholds."""
    i = np.asarray(x, np.float32).view(np.int32).astype(np.int64)
    return np.where(i >= 0, i, -(i & 0x7FFFFFFF) - 1)


def ord_to_f32(o) -> np.ndarray:
    """The inverse of f32_to_ord."""
    o = np.asarray(o, np.int64)
    i = np.where(o >= 0, o, (-(o + 1)) | 0x80000000).astype(np.uint32)
    return i.view(np.float32)
