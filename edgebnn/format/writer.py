"""Graph -> .ebnn bytes. The layout is fixed by spec.py; the file is written atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..ir.dtypes import DType
from ..ir.graph import Graph, Tensor
from ..ir.ops import FLOAT_ATTRS
from . import spec


class _Strings:
    def __init__(self):
        self.buf = bytearray()
        self.index: dict[str, tuple[int, int]] = {}

    def add(self, s: str) -> tuple[int, int]:
        if s not in self.index:
            b = s.encode("utf-8")
            self.index[s] = (len(self.buf), len(b))
            self.buf += b + b"\0"  # NUL-terminated so the C side uses names in place
        return self.index[s]


def _pad(buf: bytearray, a: int):
    buf += b"\0" * (spec.align(len(buf), a) - len(buf))


def _tensor_bytes(t: Tensor) -> bytes:
    data = np.ascontiguousarray(t.data)
    want = t.dtype.numpy
    if data.dtype != want:
        data = data.astype(want)
    raw = data.tobytes()
    if len(raw) != t.nbytes:
        raise ValueError(f"constant {t.name!r}: {len(raw)} data bytes for {t.dtype.short}{list(t.shape)}, "
                         f"expected {t.nbytes}")
    return raw


def _with_quant_tensors(graph: Graph) -> tuple[list[Tensor], dict[int, tuple[int, int]]]:
    """Per-channel scales and zero points become hidden constant tensors the record points at
    (zero points only when one is non-zero)."""
    tensors = list(graph.tensors)
    refs: dict[int, tuple[int, int]] = {}
    for i, t in enumerate(graph.tensors):
        if t.quant is not None and t.quant.per_channel:
            tensors.append(Tensor(f"{t.name}.scales", DType.F32, t.quant.scale.shape,
                                  data=t.quant.scale.astype(np.float32)))
            if not np.any(t.quant.zero_point):  # symmetric (the usual weights): no zero-point vector
                refs[i] = (len(tensors) - 1, spec.NONE_INDEX)
                continue
            tensors.append(Tensor(f"{t.name}.zero_points", DType.I32, t.quant.zero_point.shape,
                                  data=t.quant.zero_point.astype(np.int32)))
            refs[i] = (len(tensors) - 2, len(tensors) - 1)
    return tensors, refs


def to_bytes(graph: Graph) -> bytes:
    strings = _Strings()
    tensors, quant_refs = _with_quant_tensors(graph)

    data = bytearray()
    tens = bytearray(len(tensors).to_bytes(4, "little") + bytes(4))
    for i, t in enumerate(tensors):
        off, size = 0, 0
        if t.is_const:
            _pad(data, spec.ALIGN)
            off = len(data)
            raw = _tensor_bytes(t)
            size = len(raw)
            data += raw
        dims = list(t.shape) + [0] * (6 - len(t.shape))
        qkind, scale, zp, axis, sref, zref = spec.QUANT_NONE, 0.0, 0, -1, spec.NONE_INDEX, spec.NONE_INDEX
        if t.quant is not None:
            if t.quant.per_channel:
                qkind, axis = spec.QUANT_CHANNEL, t.quant.axis % len(t.shape)
                sref, zref = quant_refs[i]
            else:
                qkind, scale, zp = spec.QUANT_TENSOR, float(t.quant.scale), int(t.quant.zero_point)
        name_off, name_len = strings.add(t.name)
        tens += spec.TENSOR.pack(name_off, name_len, int(t.dtype), len(t.shape), qkind,
                                 spec.LAYOUTS[t.io_layout], axis, *dims, off, size, scale, zp, sref, zref)

    grph = bytearray()
    grph += np.array([len(graph.ops), len(graph.inputs), len(graph.outputs), 0], "<u4").tobytes()
    grph += np.array(graph.inputs + graph.outputs, "<u4").tobytes()
    _pad(grph, 8)
    for op in graph.ops:
        body = bytearray()
        body += np.array([spec.NONE_INDEX if i is None else i for i in op.inputs] + op.outputs, "<u4").tobytes()
        _pad(body, 8)
        for key, values in sorted(op.attrs.items()):
            is_float = key in FLOAT_ATTRS
            body += spec.ATTR_HEADER.pack(int(key), spec.ATTR_FLOAT if is_float else spec.ATTR_INT, len(values))
            body += np.array(values, "<f8" if is_float else "<i8").tobytes()
        name_off, name_len = strings.add(op.name)
        grph += spec.OP_HEADER.pack(spec.OP_HEADER.size + len(body), int(op.type), len(op.inputs),
                                    len(op.outputs), len(op.attrs), name_off, name_len)
        grph += body

    from .. import __version__
    metadata = {"edgebnn.version": __version__, **graph.metadata}  # every file says what wrote it
    meta = bytearray(len(metadata).to_bytes(4, "little") + bytes(4))
    for k, v in sorted(metadata.items()):
        meta += spec.META_ENTRY.pack(*strings.add(k), *strings.add(str(v)))

    sections = [(spec.SEC_STRINGS, bytes(strings.buf)), (spec.SEC_TENSORS, bytes(tens)),
                (spec.SEC_GRAPH, bytes(grph)), (spec.SEC_META, bytes(meta)), (spec.SEC_DATA, bytes(data))]
    out = bytearray(spec.HEADER.size + spec.SECTION.size * len(sections))
    directory = []
    for tag, payload in sections:
        _pad(out, spec.ALIGN)
        directory.append(spec.SECTION.pack(tag, 0, len(out), len(payload)))
        out += payload
    _pad(out, spec.ALIGN)
    out[:spec.HEADER.size] = spec.HEADER.pack(spec.MAGIC, spec.VERSION_MAJOR, spec.VERSION_MINOR, len(out),
                                              len(sections), 0, spec.HEADER.size)
    out[spec.HEADER.size:spec.HEADER.size + spec.SECTION.size * len(sections)] = b"".join(directory)
    return bytes(out)


def atomic_write(path, payload: bytes) -> Path:
    """Write bytes to `path` through a temporary file and a rename: on any error no partial file
    is left behind, and a reader never sees half a file. Every writer of model files uses this."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    try:
        # mkstemp makes the file 0600; a model file is as readable as any other file the user writes
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save(graph: Graph, path) -> Path:
    """Write `graph` to `path` atomically: on any error no partial file is left behind."""
    return atomic_write(path, to_bytes(graph))
