"""A small reader of the TFLite flatbuffer: just the schema fields the importer needs.

Hand-written instead of depending on TensorFlow or generated classes: the format is stable,
the fields we read are few (tensorflow/lite/schema/schema.fbs gives the field ids used below),
and every read is bounds-checked so a corrupt file fails with one message, not a crash.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

# BuiltinOperator codes (schema.fbs) of the ops the importer knows, and names for errors.
BUILTIN = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE", 6: "DEQUANTIZE", 7: "EMBEDDING_LOOKUP", 8: "FLOOR", 9: "FULLY_CONNECTED",
    10: "HASHTABLE_LOOKUP", 11: "L2_NORMALIZATION", 12: "L2_POOL_2D", 13: "LOCAL_RESPONSE_NORMALIZATION",
    14: "LOGISTIC", 15: "LSH_PROJECTION", 16: "LSTM", 17: "MAX_POOL_2D", 18: "MUL", 19: "RELU",
    20: "RELU_N1_TO_1", 21: "RELU6", 22: "RESHAPE", 23: "RESIZE_BILINEAR", 24: "RNN", 25: "SOFTMAX",
    26: "SPACE_TO_DEPTH", 27: "SVDF", 28: "TANH", 32: "CUSTOM", 34: "PAD", 36: "GATHER",
    37: "BATCH_TO_SPACE_ND", 38: "SPACE_TO_BATCH_ND", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB", 42: "DIV",
    43: "SQUEEZE", 45: "STRIDED_SLICE", 47: "EXP", 49: "SPLIT", 50: "LOG_SOFTMAX", 53: "CAST", 54: "PRELU",
    55: "MAXIMUM", 56: "ARG_MAX", 57: "MINIMUM", 60: "PADV2", 65: "SLICE", 67: "TRANSPOSE_CONV",
    70: "EXPAND_DIMS", 74: "SUM", 75: "SQRT", 76: "RSQRT", 77: "SHAPE", 82: "REDUCE_MAX", 83: "PACK",
    88: "UNPACK", 97: "RESIZE_NEAREST_NEIGHBOR", 98: "LEAKY_RELU", 100: "MIRROR_PAD", 101: "ABS",
    102: "SPLIT_V", 111: "ELU", 114: "QUANTIZE", 117: "HARD_SWISH",
}

# TensorType -> numpy dtype (FLOAT16 = 1 is read as float16 and widened by the importer).
TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_,
                7: np.int16, 9: np.int8, 10: np.float64}
TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
              7: "int16", 8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64",
              13: "resource", 14: "variant", 15: "uint32", 16: "uint16", 17: "int4"}


class FormatError(ValueError):
    """The bytes are not a well-formed TFLite flatbuffer."""


class _Buf:
    def __init__(self, data: bytes):
        self.b = data

    def _get(self, fmt: str, pos: int):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.b):
            raise FormatError(f"offset {pos} is outside the {len(self.b)}-byte file")
        return struct.unpack_from(fmt, self.b, pos)[0]

    def u32(self, pos): return self._get("<I", pos)
    def i32(self, pos): return self._get("<i", pos)


class Table:
    """One flatbuffer table: scalar, string, vector and sub-table fields by field id."""

    def __init__(self, buf: _Buf, pos: int):
        self.buf, self.pos = buf, pos
        vt = pos - buf.i32(pos)
        self.vt_len = buf._get("<H", vt)
        self.vt = vt
        if self.vt_len < 4 or self.vt_len % 2:
            raise FormatError(f"bad vtable at {vt}")

    def _off(self, fid: int) -> int:
        o = 4 + 2 * fid
        return self.buf._get("<H", self.vt + o) if o < self.vt_len else 0

    def has(self, fid: int) -> bool:
        return self._off(fid) != 0

    def scalar(self, fid: int, fmt: str, default=0):
        o = self._off(fid)
        return self.buf._get("<" + fmt, self.pos + o) if o else default

    def _indirect(self, fid: int) -> int | None:
        o = self._off(fid)
        if not o:
            return None
        p = self.pos + o
        return p + self.buf.u32(p)

    def table(self, fid: int) -> "Table | None":
        p = self._indirect(fid)
        return None if p is None else Table(self.buf, p)

    def _vec(self, fid: int) -> tuple[int, int] | None:
        p = self._indirect(fid)
        if p is None:
            return None
        n = self.buf.u32(p)
        return p + 4, n

    def string(self, fid: int, default: str = "") -> str:
        v = self._vec(fid)
        if v is None:
            return default
        start, n = v
        if start + n > len(self.buf.b):
            raise FormatError("string runs past the end of the file")
        return self.buf.b[start:start + n].decode("utf-8", "replace")

    def array(self, fid: int, dtype) -> np.ndarray:
        v = self._vec(fid)
        dt = np.dtype(dtype).newbyteorder("<")
        if v is None:
            return np.zeros(0, dt)
        start, n = v
        if start + n * dt.itemsize > len(self.buf.b):
            raise FormatError("vector runs past the end of the file")
        return np.frombuffer(self.buf.b, dt, n, start)

    def tables(self, fid: int) -> list["Table"]:
        v = self._vec(fid)
        if v is None:
            return []
        start, n = v
        if start + 4 * n > len(self.buf.b):
            raise FormatError("vector runs past the end of the file")
        return [Table(self.buf, start + 4 * i + self.buf.u32(start + 4 * i)) for i in range(n)]


@dataclass
class TTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    type: int
    data: np.ndarray | None            # constant contents (shaped), None for activations
    scale: np.ndarray                  # [] when not quantized
    zero_point: np.ndarray
    quant_axis: int

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, f"type {self.type}")

    @property
    def quantized(self) -> bool:
        return self.scale.size > 0 and self.type in (3, 9, 7, 2)


@dataclass
class TOp:
    index: int
    name: str               # BUILTIN name or the custom code
    custom: bool
    inputs: list[int]
    outputs: list[int]
    options: Table | None   # builtin options table
    custom_options: bytes = b""


@dataclass
class TModel:
    tensors: list[TTensor]
    ops: list[TOp]
    inputs: list[int]
    outputs: list[int]
    description: str = ""
    version: int = 0
    n_subgraphs: int = 1
    extra: dict = field(default_factory=dict)


def parse(data: bytes) -> TModel:
    """The first subgraph of a TFLite model; FormatError when the bytes are not one."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise FormatError("no TFL3 file identifier")
    buf = _Buf(data)
    model = Table(buf, buf.u32(0))
    version = model.scalar(0, "I")
    codes = []
    for oc in model.tables(1):
        code = max(oc.scalar(0, "b"), oc.scalar(3, "i"))   # deprecated_builtin_code, builtin_code
        codes.append((code, oc.string(1)))
    subgraphs = model.tables(2)
    if not subgraphs:
        raise FormatError("the model has no subgraph")
    buffers = []
    for b in model.tables(4):
        off, size = b.scalar(1, "Q"), b.scalar(2, "Q")
        if off > 1:  # models over 2 GB keep buffers after the flatbuffer
            if off + size > len(data):
                raise FormatError("a buffer runs past the end of the file")
            buffers.append(np.frombuffer(data, np.uint8, size, off))
        else:
            buffers.append(b.array(0, np.uint8))
    sg = subgraphs[0]
    tensors = []
    for i, t in enumerate(sg.tables(0)):
        shape = tuple(int(d) for d in t.array(0, np.int32))
        ttype = t.scalar(1, "b")
        bi = t.scalar(2, "I")
        data_ = None
        if 0 < bi < len(buffers) and buffers[bi].size:
            if ttype not in TENSOR_TYPES:
                raise FormatError(f"tensor {i} has unsupported constant type {TYPE_NAMES.get(ttype, ttype)}")
            dt = np.dtype(TENSOR_TYPES[ttype]).newbyteorder("<")
            raw = buffers[bi]
            n = int(np.prod(shape)) if shape else 1
            if raw.size != n * dt.itemsize:
                raise FormatError(f"tensor {i}: buffer of {raw.size} bytes for shape {list(shape)}")
            data_ = raw.view(dt).reshape(shape).astype(dt.newbyteorder("="))
        q = t.table(4)
        scale = q.array(2, np.float32).astype(np.float32) if q else np.zeros(0, np.float32)
        zp = q.array(3, np.int64).astype(np.int64) if q else np.zeros(0, np.int64)
        axis = q.scalar(6, "i") if q else 0
        if zp.size == 0 and scale.size:
            zp = np.zeros(scale.size, np.int64)
        tensors.append(TTensor(i, t.string(3, f"tensor_{i}"), shape, ttype, data_, scale, zp, axis))
    ops = []
    for i, o in enumerate(sg.tables(3)):
        ci = o.scalar(0, "I")
        if ci >= len(codes):
            raise FormatError(f"operator {i} uses opcode {ci} of {len(codes)}")
        code, custom_code = codes[ci]
        custom = code == 32
        name = custom_code if custom else BUILTIN.get(code, f"builtin op {code}")
        ops.append(TOp(i, name, custom, [int(v) for v in o.array(1, np.int32)], [int(v) for v in o.array(2, np.int32)],
                       o.table(4), bytes(o.array(5, np.uint8))))
    n_t = len(tensors)
    for op in ops:
        for v in op.inputs + op.outputs:
            if not -1 <= v < n_t:
                raise FormatError(f"operator {op.index} ({op.name}) refers to tensor {v} of {n_t}")
    return TModel(tensors, ops, [int(v) for v in sg.array(1, np.int32)], [int(v) for v in sg.array(2, np.int32)],
                  model.string(3), version, len(subgraphs))
