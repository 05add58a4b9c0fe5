"""Byte layout of the .ebnn packed format v1 (docs/format.md is the prose version)."""
import struct

MAGIC = b"EBNN"
VERSION_MAJOR = 1
VERSION_MINOR = 0
ALIGN = 64
NONE_INDEX = 0xFFFFFFFF

# magic, major, minor, file_size, n_sections, flags, section_dir_offset, 32 reserved bytes
HEADER = struct.Struct("<4sHHQIIQ32x")
# tag, flags, offset, size, reserved
SECTION = struct.Struct("<4sIQQ8x")
# name_off, name_len, dtype, ndim, quant_kind, io_layout, quant_axis, dims[6],
# data_offset, data_size, scale, zero_point, scales_tensor, zero_points_tensor, reserved
TENSOR = struct.Struct("<IIBBBBi6IQQfiII8x")
# record_size, op_type, n_inputs, n_outputs, n_attrs, name_off, name_len
OP_HEADER = struct.Struct("<IHHHHII4x")
# key, value type, count
ATTR_HEADER = struct.Struct("<HBxI")
# key_off, key_len, value_off, value_len
META_ENTRY = struct.Struct("<IIII")

SEC_STRINGS = b"STRS"
SEC_TENSORS = b"TENS"
SEC_GRAPH = b"GRPH"
SEC_META = b"META"
SEC_DATA = b"DATA"

ATTR_INT = 1
ATTR_FLOAT = 2

QUANT_NONE = 0
QUANT_TENSOR = 1
QUANT_CHANNEL = 2

LAYOUTS = {"NHWC": 0, "NCHW": 1}

assert HEADER.size == 64 and SECTION.size == 32 and TENSOR.size == 80 and OP_HEADER.size == 24


def align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a
