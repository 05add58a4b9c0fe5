"""FlexBuffers, the self-describing encoding of TFLite custom-op options (LCE's ops use it).

`loads` reads what the importer needs (maps, vectors, typed vectors, ints, floats, bools,
strings, keys) and bounds-checks every read, so corrupt options fail with one message.
`dumps` writes the one shape the LCE exporter needs: a map of str -> int | float | str, at a
fixed 32-bit width (every value an op option can hold fits).
"""
from __future__ import annotations

import struct

# FlexBuffers value types (flatbuffers/flexbuffers.h)
_NULL, _INT, _UINT, _FLOAT, _KEY, _STRING = 0, 1, 2, 3, 4, 5
_IND_INT, _IND_UINT, _IND_FLOAT, _MAP, _VECTOR = 6, 7, 8, 9, 10
_VEC_INT, _VEC_UINT, _VEC_FLOAT, _VEC_KEY, _VEC_STRING = 11, 12, 13, 14, 15
_BLOB, _BOOL, _VEC_BOOL = 25, 26, 36


class FlexError(ValueError):
    """The bytes are not well-formed FlexBuffers."""


class _Reader:
    def __init__(self, data: bytes):
        self.b = bytes(data)

    def uint(self, pos: int, width: int) -> int:
        if width not in (1, 2, 4, 8) or pos < 0 or pos + width > len(self.b):
            raise FlexError(f"read of {width} bytes at {pos} is outside the {len(self.b)}-byte options")
        return int.from_bytes(self.b[pos:pos + width], "little")

    def int(self, pos: int, width: int) -> int:
        v = self.uint(pos, width)
        return v - (1 << (8 * width)) if v >> (8 * width - 1) else v

    def float(self, pos: int, width: int) -> float:
        if width not in (4, 8):
            raise FlexError(f"a {width}-byte float")
        self.uint(pos, width)  # bounds
        return struct.unpack_from("<f" if width == 4 else "<d", self.b, pos)[0]

    def target(self, pos: int, width: int) -> int:
        t = pos - self.uint(pos, width)
        if t < 0:
            raise FlexError(f"offset at {pos} points before the start of the options")
        return t

    def cstring(self, pos: int) -> str:
        end = self.b.find(b"\0", pos)
        if pos < 0 or end < 0:
            raise FlexError(f"unterminated key at {pos}")
        return self.b[pos:end].decode("utf-8", "replace")

    def value(self, pos: int, parent_width: int, packed: int, depth: int = 0):
        if depth > 32:
            raise FlexError("options nested deeper than 32 levels")
        t, width = packed >> 2, 1 << (packed & 3)
        if t == _NULL:
            return None
        if t in (_INT, _UINT, _BOOL):
            v = self.int(pos, parent_width) if t == _INT else self.uint(pos, parent_width)
            return bool(v) if t == _BOOL else v
        if t == _FLOAT:
            return self.float(pos, parent_width)
        p = self.target(pos, parent_width)
        if t == _IND_INT:
            return self.int(p, width)
        if t == _IND_UINT:
            return self.uint(p, width)
        if t == _IND_FLOAT:
            return self.float(p, width)
        if t == _KEY:
            return self.cstring(p)
        if t in (_STRING, _BLOB):
            n = self.uint(p - width, width)
            if p + n > len(self.b):
                raise FlexError("string runs past the end of the options")
            raw = self.b[p:p + n]
            return raw if t == _BLOB else raw.decode("utf-8", "replace")
        if t in (_VECTOR, _MAP):
            n = self._count(p, width)
            types = p + n * width
            vals = [self.value(p + i * width, width, self.uint(types + i, 1), depth + 1) for i in range(n)]
            if t == _VECTOR:
                return vals
            keys = self.value(p - 3 * width, width, (_VEC_KEY << 2) | {1: 0, 2: 1, 4: 2, 8: 3}[
                self._width(self.uint(p - 2 * width, width))], depth + 1)
            if len(keys) != n:
                raise FlexError(f"a map of {n} values has {len(keys)} keys")
            return dict(zip(keys, vals))
        if _VEC_INT <= t <= _VEC_STRING or t == _VEC_BOOL or 16 <= t <= 24:
            if 16 <= t <= 24:  # fixed-length typed vectors of 2, 3, 4
                n, elem = (t - 16) // 3 + 2, _INT + (t - 16) % 3
            else:
                n, elem = self._count(p, width), (_BOOL if t == _VEC_BOOL else t - _VEC_INT + _INT)
            return [self.value(p + i * width, width, (elem << 2) | (packed & 3), depth + 1) for i in range(n)]
        raise FlexError(f"unknown value type {t}")

    def _count(self, p: int, width: int) -> int:
        n = self.uint(p - width, width)
        if p + n * width > len(self.b):
            raise FlexError(f"a vector of {n} elements runs past the end of the options")
        return n

    @staticmethod
    def _width(w: int) -> int:
        if w not in (1, 2, 4, 8):
            raise FlexError(f"byte width {w}")
        return w


def loads(data: bytes):
    """The root value of a FlexBuffer (a dict for op options)."""
    r = _Reader(data)
    n = len(r.b)
    if n < 3:
        raise FlexError(f"{n} bytes are too few for a FlexBuffer")
    width = r.uint(n - 1, 1)
    if width not in (1, 2, 4, 8) or n < 2 + width:
        raise FlexError(f"root byte width {width}")
    return r.value(n - 2 - width, width, r.uint(n - 2, 1))


def dumps(options: dict) -> bytes:
    """A FlexBuffer map (keys sorted, as readers binary-search them); every slot 32 bits wide."""
    out = bytearray()

    def align():
        out.extend(b"\0" * (-len(out) % 4))

    def u32(v: int):
        out.extend(struct.pack("<I", v))

    keys = sorted(options)
    key_pos = {}
    for k in keys:
        key_pos[k] = len(out)
        out.extend(k.encode() + b"\0")
    str_pos = {}
    for k in keys:
        if isinstance(options[k], str):
            align()
            raw = options[k].encode()
            u32(len(raw))
            str_pos[k] = len(out)
            out.extend(raw + b"\0")
    align()
    u32(len(keys))
    keys_vec = len(out)
    for k in keys:
        u32(len(out) - key_pos[k])
    u32(len(out) - keys_vec)        # the map's keys vector
    u32(4)                          # its byte width
    u32(len(keys))
    map_pos = len(out)
    types = []
    for k in keys:
        v = options[k]
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise TypeError(f"option {k!r}: {type(v).__name__} values are not written")
        if isinstance(v, str):
            u32(len(out) - str_pos[k])
            types.append(_STRING << 2 | 2)
        elif isinstance(v, int):
            out.extend(struct.pack("<i", v))
            types.append(_INT << 2 | 2)
        else:
            out.extend(struct.pack("<f", v))
            types.append(_FLOAT << 2 | 2)
    out.extend(bytes(types))
    align()
    u32(len(out) - map_pos)
    out.extend(bytes([_MAP << 2 | 2, 4]))
    return bytes(out)
