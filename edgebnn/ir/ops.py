"""The v1 op set: codes, attribute keys and activation codes shared with the C runtime.

These numbers are the file format's contract (docs/format.md); the C side has the same
tables in runtime/src/format.h. Never renumber: add new codes at the end.
"""
from __future__ import annotations

import enum


class OpType(enum.IntEnum):
    CONV2D = 1
    DEPTHWISE_CONV2D = 2
    FULLY_CONNECTED = 3
    HETCONV2D = 4
    BCONV2D = 5
    BFULLY_CONNECTED = 6
    KBIT_CONV2D = 7
    HORQ_CONV2D = 8
    SIGN_PACK = 9
    UNPACK = 10
    MAX_POOL2D = 11
    AVG_POOL2D = 12
    BMAX_POOL2D = 13
    GLOBAL_AVG_POOL = 14
    ADD = 15
    CONCAT = 16
    RELU = 17
    RELU6 = 18
    PRELU = 19
    HARDTANH = 20
    AFFINE = 21
    RESHAPE = 22
    TRANSPOSE = 23
    CHANNEL_SHUFFLE = 24
    SOFTMAX = 25
    QUANTIZE = 26
    DEQUANTIZE = 27
    ABS = 28
    CHANNEL_MEAN = 29   # mean over the last axis, kept as a dim of 1 (XNOR-Net's mean_c |x|)
    MUL = 30            # elementwise product; the second operand may have last dim 1 (a scale per position)


class Attr(enum.IntEnum):
    """Attribute keys. Each has one value type: INT (int64 array) or FLOAT (float64 array)."""
    STRIDES = 1
    DILATIONS = 2
    PADS = 3          # top, left, bottom, right
    GROUPS = 4
    PAD_VALUE = 5     # binary convs: 0 = zero padding (exact border), 1 = one padding (+1)
    ACTIVATION = 6    # Activation code
    KERNEL = 7
    AXIS = 8
    PERM = 9
    CLAMP = 10        # float min, max
    BITS = 11
    STEP = 12
    ORDER = 13
    PART = 14
    COUNT_INCLUDE_PAD = 15
    ROUNDING = 16     # int8 AVG_POOL2D: 0 = half away from zero (TFLite int8), 1 = half up (TFLite uint8)


FLOAT_ATTRS = {Attr.CLAMP, Attr.STEP}


class Activation(enum.IntEnum):
    NONE = 0
    RELU = 1
    RELU6 = 2

    @classmethod
    def parse(cls, value) -> "Activation":
        if value is None:
            return cls.NONE
        if isinstance(value, Activation):
            return value
        try:
            return cls[str(value).upper()]
        except KeyError:
            raise ValueError(f"unknown activation {value!r}; expected None, 'relu' or 'relu6'") from None


# Ops whose work is dominated by binary (xor-popcount) arithmetic.
BINARY_OPS = {OpType.BCONV2D, OpType.BFULLY_CONNECTED, OpType.KBIT_CONV2D, OpType.HORQ_CONV2D,
              OpType.BMAX_POOL2D}
