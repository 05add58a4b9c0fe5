"""Write a TFLite flatbuffer: a minimal flatbuffer serializer and a model assembler.

Hand-written like the reader (converters/tflite/schema.py) so exporting needs no package.
The serializer lays objects out front to back: every table, string and vector comes after the
field that points to it (flatbuffer offsets only point forward), and each table's vtable sits
just before it. Field ids are those of tensorflow/lite/schema/schema.fbs.
"""
from __future__ import annotations

import struct

import numpy as np

# (field id) -> (kind, value): 'b' int8, 'B' uint8, 'i' int32, 'I' uint32, 'f' float32, 'Q' uint64,
# 'T' table, 'S' string, 'V' vector of tables, 'A' numeric vector (numpy), 'D' bytes (16-aligned)
_SCALAR = {"b": 1, "B": 1, "i": 4, "I": 4, "f": 4, "Q": 8}


class Table(dict):
    """One flatbuffer table: {field id: (kind, value)}."""


class _Writer:
    def __init__(self):
        self.out = bytearray()

    def pad_to(self, align: int, extra: int = 0):
        self.out.extend(b"\0" * (-(len(self.out) + extra) % align))

    def patch(self, slot: int, target: int):
        assert target > slot, "flatbuffer offsets point forward"
        struct.pack_into("<I", self.out, slot, target - slot)

    def obj(self, kind: str, value) -> int:
        if kind == "T":
            return self.table(value)
        if kind == "S":
            raw = value.encode()
            self.pad_to(4)
            pos = len(self.out)
            self.out.extend(struct.pack("<I", len(raw)) + raw + b"\0")
            return pos
        if kind == "V":
            self.pad_to(4)
            pos = len(self.out)
            self.out.extend(struct.pack("<I", len(value)) + b"\0" * (4 * len(value)))
            for i, t in enumerate(value):
                self.patch(pos + 4 + 4 * i, self.table(t))
            return pos
        if kind in ("A", "D"):
            raw = value if kind == "D" else np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes()
            n = len(raw) if kind == "D" else value.size
            self.pad_to(16 if kind == "D" else max(4, value.dtype.itemsize), extra=4)
            pos = len(self.out)
            self.out.extend(struct.pack("<I", n) + raw)
            return pos
        raise ValueError(f"unknown field kind {kind!r}")

    def table(self, t: Table) -> int:
        # inline layout: soffset, then fields largest first (no padding between them)
        fields = sorted(t.items(), key=lambda kv: (-_SCALAR.get(kv[1][0], 4), kv[0]))
        offsets, size = {}, 4
        for fid, (kind, _) in fields:
            w = _SCALAR.get(kind, 4)
            size += -size % w
            offsets[fid] = size
            size += w
        align = max([4] + [_SCALAR.get(k, 4) for k, _ in t.values()])
        n_ids = max(t) + 1 if t else 0
        vt = struct.pack(f"<HH{n_ids}H", 4 + 2 * n_ids, size, *[offsets.get(i, 0) for i in range(n_ids)])
        self.pad_to(2)
        vt_pos = len(self.out)
        self.out.extend(vt)
        self.pad_to(align)
        pos = len(self.out)
        body = bytearray(size)
        struct.pack_into("<i", body, 0, pos - vt_pos)
        refs = []
        for fid, (kind, value) in fields:
            if kind in _SCALAR:
                struct.pack_into("<" + kind, body, offsets[fid], value)
            else:
                refs.append((pos + offsets[fid], kind, value))
        self.out.extend(body)
        for slot, kind, value in refs:
            self.patch(slot, self.obj(kind, value))
        return pos


def serialize(root: Table, identifier: bytes = b"TFL3") -> bytes:
    w = _Writer()
    w.out.extend(b"\0\0\0\0" + identifier)
    w.patch(0, w.table(root))
    return bytes(w.out)


# TensorType codes
FLOAT32, INT32 = 0, 2


class ModelBuilder:
    """Tensors, constant buffers, operator codes and operators of one TFLite subgraph."""

    def __init__(self):
        self.tensors: list[Table] = []
        self.buffers: list[Table] = [Table()]   # buffer 0 is the empty one by convention
        self.codes: list[tuple[int, str]] = []
        self.ops: list[Table] = []

    def tensor(self, name: str, shape, ttype: int, data: np.ndarray | None = None) -> int:
        t = Table({0: ("A", np.asarray(shape, np.int32)), 1: ("b", ttype), 3: ("S", name)})
        if data is not None:
            want = {FLOAT32: np.float32, INT32: np.int32}[ttype]
            self.buffers.append(Table({0: ("D", np.ascontiguousarray(data, want).tobytes())}))
            t[2] = ("I", len(self.buffers) - 1)
        else:
            t[2] = ("I", 0)
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, name: str, data: np.ndarray) -> int:
        a = np.asarray(data)
        return self.tensor(name, a.shape, INT32 if a.dtype.kind in "iu" else FLOAT32, a)

    def _code(self, builtin: int, custom: str = "") -> int:
        key = (builtin, custom)
        if key not in self.codes:
            self.codes.append(key)
        return self.codes.index(key)

    def op(self, builtin: int, inputs, outputs, options_type: int = 0, options: Table | None = None,
           custom: str = "", custom_options: bytes = b"") -> None:
        o = Table({0: ("I", self._code(builtin, custom)), 1: ("A", np.asarray(inputs, np.int32)),
                   2: ("A", np.asarray(outputs, np.int32))})
        if options is not None:
            o[3] = ("B", options_type)
            o[4] = ("T", options)
        if custom_options:
            o[5] = ("A", np.frombuffer(custom_options, np.uint8))
        self.ops.append(o)

    def finish(self, inputs, outputs, description: str) -> bytes:
        codes = []
        for builtin, custom in self.codes:
            c = Table({0: ("b", min(builtin, 127)), 2: ("i", 1), 3: ("i", builtin)})
            if custom:
                c[1] = ("S", custom)
            codes.append(c)
        sg = Table({0: ("V", self.tensors), 1: ("A", np.asarray(inputs, np.int32)),
                    2: ("A", np.asarray(outputs, np.int32)), 3: ("V", self.ops), 4: ("S", "main")})
        model = Table({0: ("I", 3), 1: ("V", codes), 2: ("V", [sg]), 3: ("S", description),
                       4: ("V", self.buffers)})
        return serialize(model)
