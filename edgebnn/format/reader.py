""".ebnn bytes -> Graph, checking every offset and size (a hostile file gives FormatError)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..ir.dtypes import DType, storage_bytes
from ..ir.graph import MAX_DIMS, Graph, Op, Quant, Tensor
from ..ir.ops import Attr, OpType
from . import spec


class FormatError(ValueError):
    """The file is not a valid .ebnn model; the message says what is wrong."""


def _check(cond: bool, msg: str):
    if not cond:
        raise FormatError(msg)


def _sections(buf: memoryview) -> dict[bytes, memoryview]:
    _check(bytes(buf[:4]) == spec.MAGIC, f"bad magic {bytes(buf[:4])!r}: not an .ebnn model")
    _check(len(buf) >= spec.HEADER.size, f"file is {len(buf)} bytes, too short for the 64-byte header")
    magic, major, minor, file_size, n_sec, _flags, dir_off = spec.HEADER.unpack_from(buf, 0)
    _check(major == spec.VERSION_MAJOR, f"format version {major}.{minor} is not supported (this reader: "
                                        f"{spec.VERSION_MAJOR}.x); convert the model again")
    _check(file_size == len(buf), f"header says {file_size} bytes but the file has {len(buf)}: truncated?")
    _check(n_sec <= 64 and dir_off + n_sec * spec.SECTION.size <= len(buf), "section directory past end of file")
    out = {}
    for i in range(n_sec):
        tag, _f, off, size = spec.SECTION.unpack_from(buf, dir_off + i * spec.SECTION.size)
        _check(off % spec.ALIGN == 0 and off <= len(buf) and size <= len(buf) - off,
               f"section {bytes(tag)!r} at {off}+{size} lies outside the file")
        out[bytes(tag)] = buf[off:off + size]
    for tag in (spec.SEC_STRINGS, spec.SEC_TENSORS, spec.SEC_GRAPH, spec.SEC_DATA):
        _check(tag in out, f"missing section {tag.decode()}")
    return out


def _string(strs: memoryview, off: int, n: int) -> str:
    _check(off <= len(strs) and n < len(strs) - off and strs[off + n] == 0,
           "string reference is not a terminated string inside the string section")
    try:
        return bytes(strs[off:off + n]).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("string is not valid UTF-8") from None


def from_bytes(data: bytes) -> Graph:
    buf = memoryview(data)
    sec = _sections(buf)
    strs, tens, grph, blob = sec[spec.SEC_STRINGS], sec[spec.SEC_TENSORS], sec[spec.SEC_GRAPH], sec[spec.SEC_DATA]

    _check(len(tens) >= 8, "tensor section too short")
    n_t = int.from_bytes(tens[:4], "little")
    _check(n_t <= (len(tens) - 8) // spec.TENSOR.size, f"tensor table claims {n_t} tensors, section too short")
    g = Graph()
    raw_quant = []
    for i in range(n_t):
        (noff, nlen, dt, ndim, qkind, layout, qaxis, *rest) = spec.TENSOR.unpack_from(tens, 8 + i * spec.TENSOR.size)
        dims, (doff, dsize, scale, zp, sref, zref) = rest[:6], rest[6:]
        name = _string(strs, noff, nlen)
        _check(dt in DType._value2member_map_, f"tensor {name!r}: unknown dtype code {dt}")
        _check(1 <= ndim <= MAX_DIMS and all(d > 0 for d in dims[:ndim]), f"tensor {name!r}: bad shape")
        dtype, shape = DType(dt), tuple(dims[:ndim])
        _check(int(np.prod(shape, dtype=object)) <= 1 << 34 and max(shape) < 1 << 31, f"tensor {name!r}: too many elements")
        t = Tensor(name, dtype, shape, io_layout="NCHW" if layout == 1 else "NHWC")
        if dsize:
            nbytes = storage_bytes(dtype, shape)
            _check(dsize == nbytes, f"tensor {name!r}: {dsize} data bytes, its shape needs {nbytes}")
            _check(doff % spec.ALIGN == 0 and doff <= len(blob) and dsize <= len(blob) - doff,
                   f"tensor {name!r}: data at {doff}+{dsize} lies outside the data section")
            arr = np.frombuffer(blob[doff:doff + dsize], dtype=dtype.numpy)
            t.data = arr.reshape(shape[:-1] + ((shape[-1] + 63) // 64,) if dtype is DType.BIT1 else shape)
        raw_quant.append((qkind, qaxis, scale, zp, sref, zref))
        g.tensors.append(t)
    for t, (qkind, qaxis, scale, zp, sref, zref) in zip(g.tensors, raw_quant):
        if qkind == spec.QUANT_TENSOR:
            t.quant = Quant(np.float32(scale), np.int32(zp))
        elif qkind == spec.QUANT_CHANNEL:
            no_zp = zref == spec.NONE_INDEX  # symmetric: the writer leaves the all-zero vector out
            _check(sref < n_t and g.tensors[sref].is_const and (no_zp or (zref < n_t and g.tensors[zref].is_const)),
                   f"tensor {t.name!r}: bad per-channel quantization references")
            sc = g.tensors[sref].data
            t.quant = Quant(sc, np.zeros(sc.shape, np.int32) if no_zp else g.tensors[zref].data, qaxis)

    _check(len(grph) >= 16, "graph section too short")
    n_ops, n_in, n_out, _ = np.frombuffer(grph[:16], "<u4")
    pos = 16 + 4 * (int(n_in) + int(n_out))
    _check(pos <= len(grph), "graph inputs/outputs past the graph section")
    io = np.frombuffer(grph[16:pos], "<u4").tolist()
    g.inputs, g.outputs = io[:n_in], io[n_in:]
    _check(all(i < n_t for i in io), "graph input/output index out of range")
    _check(all(not g.tensors[i].is_const for i in g.inputs), "a graph input is a constant")
    written = set(g.inputs)
    pos = spec.align(pos, 8)
    for k in range(int(n_ops)):
        _check(pos + spec.OP_HEADER.size <= len(grph), f"op {k}: record past the graph section")
        size, code, ni, no, na, noff, nlen = spec.OP_HEADER.unpack_from(grph, pos)
        _check(size >= spec.OP_HEADER.size and size % 8 == 0 and pos + size <= len(grph), f"op {k}: bad record size")
        _check(code in OpType._value2member_map_, f"op {k}: unknown op code {code}")
        rec = grph[pos + spec.OP_HEADER.size:pos + size]
        _check(4 * (ni + no) <= len(rec), f"op {k}: tensor list past its record")
        idx = np.frombuffer(rec[:4 * (ni + no)], "<u4").tolist()
        _check(all(i < n_t or (j < ni and i == spec.NONE_INDEX) for j, i in enumerate(idx)),
               f"op {k}: tensor index out of range")
        a = spec.align(4 * (ni + no), 8)
        attrs = {}
        for _ in range(na):
            _check(a + spec.ATTR_HEADER.size <= len(rec), f"op {k}: attribute past its record")
            key, typ, cnt = spec.ATTR_HEADER.unpack_from(rec, a)
            a += spec.ATTR_HEADER.size
            _check(cnt <= (len(rec) - a) // 8 and typ in (spec.ATTR_INT, spec.ATTR_FLOAT), f"op {k}: bad attribute")
            vals = np.frombuffer(rec[a:a + 8 * cnt], "<f8" if typ == spec.ATTR_FLOAT else "<i8").tolist()
            a += 8 * cnt
            if key in Attr._value2member_map_:
                attrs[Attr(key)] = tuple(vals)
        for i in idx[:ni]:
            if i != spec.NONE_INDEX and not g.tensors[i].is_const and i not in written:
                raise FormatError(f"op {k} reads tensor {g.tensors[i].name!r} before anything writes it")
        for i in idx[ni:]:
            if g.tensors[i].is_const or i in written:
                raise FormatError(f"op {k} writes tensor {g.tensors[i].name!r}, a constant or already written")
            written.add(i)
        g.ops.append(Op(OpType(code), [None if i == spec.NONE_INDEX else i for i in idx[:ni]], idx[ni:], attrs,
                        _string(strs, noff, nlen)))
        pos += size

    meta = sec.get(spec.SEC_META)
    if meta is not None and len(meta) >= 8:
        n_m = int.from_bytes(meta[:4], "little")
        _check(n_m <= (len(meta) - 8) // spec.META_ENTRY.size, "metadata table past its section")
        for i in range(n_m):
            ko, kl, vo, vl = spec.META_ENTRY.unpack_from(meta, 8 + i * spec.META_ENTRY.size)
            g.metadata[_string(strs, ko, kl)] = _string(strs, vo, vl)
    # Per-channel scales/zero points are stored as trailing hidden tensors (an encoding detail
    # of the writer): drop them so that reading and writing again gives the same bytes.
    hidden = {i for q in raw_quant if q[0] == spec.QUANT_CHANNEL for i in q[4:6] if i != spec.NONE_INDEX}
    used = {i for op in g.ops for i in op.inputs + op.outputs if i is not None} | set(g.inputs) | set(g.outputs)
    if hidden and not hidden & used and hidden == set(range(n_t - len(hidden), n_t)):
        del g.tensors[n_t - len(hidden):]
    return g


def load(path) -> Graph:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise FormatError(f"cannot read {p}: {e.strerror}") from None
    try:
        return from_bytes(data)
    except FormatError as e:
        raise FormatError(f"{p.name}: {e}") from None
