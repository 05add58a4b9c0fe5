"""The QONNX quantizers in NumPy, as the QONNX spec defines them, and as onnx.reference ops.

They fold weight quantizers into constants, give the reference run the converter takes its
shapes and its verification from, and tell the lowering what levels an activation quantizer
produces (docs: github.com/fastmachinelearning/qonnx, docs/qonnx-custom-ops).
"""
from __future__ import annotations

import numpy as np
from onnx.reference.op_run import OpRun

DOMAINS = ("onnx.brevitas", "qonnx.custom_op.general", "finn.custom_op.general")


def _mode(m) -> str:
    m = m.decode() if isinstance(m, bytes) else str(m)
    return m.upper()


def rounding(mode, y: np.ndarray) -> np.ndarray:
    mode = _mode(mode)
    if mode in ("ROUND", "HALF_EVEN"):
        return np.round(y)                       # NumPy rounds half to even, like QONNX ROUND
    if mode == "CEIL":
        return np.ceil(y)
    if mode == "FLOOR":
        return np.floor(y)
    if mode == "HALF_UP":
        return np.where(y >= 0, np.floor(y + 0.5), -np.floor(-y + 0.5))   # ties away from zero
    if mode == "HALF_DOWN":
        return np.where(y >= 0, np.ceil(y - 0.5), -np.ceil(-y - 0.5))     # ties toward zero
    if mode in ("ROUND_TO_ZERO", "DOWN"):
        return np.trunc(y)
    if mode == "UP":
        return np.sign(y) * np.ceil(np.abs(y))
    raise ValueError(f"unknown rounding_mode {mode!r}")


def int_range(signed, narrow, bits) -> tuple[int, int]:
    bits = int(bits)
    if signed:
        return -(2 ** (bits - 1)) + int(bool(narrow)), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1 - int(bool(narrow))


def bipolar_quant(x, scale):
    return (np.where(x >= 0, 1.0, -1.0) * scale).astype(np.float32)


def quant(x, scale, zeropt, bitwidth, signed=1, narrow=0, rounding_mode="ROUND"):
    lo, hi = int_range(signed, narrow, float(np.asarray(bitwidth).reshape(-1)[0]))
    y = np.clip(x / scale + zeropt, lo, hi)
    return ((rounding(rounding_mode, y) - zeropt) * scale).astype(np.float32)


def trunc(x, scale, zeropt, in_bits, out_scale, out_bits, signed=1, narrow=0, rounding_mode="FLOOR"):
    y = np.round(x / scale + zeropt)
    ts = 2.0 ** np.round(np.log2(out_scale / scale))
    y = y / ts
    lo, hi = int_range(signed, narrow, float(np.asarray(out_bits).reshape(-1)[0]))
    y = rounding(rounding_mode, np.clip(y, lo, hi))
    return ((y - zeropt / ts) * out_scale).astype(np.float32)


def _ref_ops():
    """OpRun classes for every QONNX domain (onnx.reference dispatches on domain and name)."""
    out = []
    for dom in DOMAINS:
        class BipolarQuant(OpRun):
            op_domain = dom

            def _run(self, x, scale):
                return (bipolar_quant(x, scale),)

        class Quant(OpRun):
            op_domain = dom

            def _run(self, x, scale, zeropt, bitwidth, signed=1, narrow=0, rounding_mode="ROUND"):
                return (quant(x, scale, zeropt, bitwidth, signed, narrow, rounding_mode),)

        class Trunc(OpRun):
            op_domain = dom

            def _run(self, x, scale, zeropt, in_bits, out_scale, out_bits=None, signed=1, narrow=0,
                     rounding_mode="FLOOR"):
                if out_bits is None:  # Trunc v1: (x, scale, zeropt, in_bits, out_bits), output scale = input scale
                    out_bits, out_scale = out_scale, scale * 2.0 ** (np.asarray(in_bits) - out_scale)
                return (trunc(x, scale, zeropt, in_bits, out_scale, out_bits, signed, narrow, rounding_mode),)

        out += [BipolarQuant, Quant, Trunc]
    return out


class BatchNormalization(OpRun):
    """Inference BatchNormalization. onnx.reference's opset-9 version switches to training mode
    whenever `momentum` is set, but a node with the single output Y is inference (the spec's
    output case #2), and that is what exporters write."""
    op_domain = ""

    def _run(self, x, scale, bias, mean, var, epsilon=1e-5, momentum=None, training_mode=0, spatial=1,
             is_test=None):
        if training_mode or len([o for o in self.onnx_node.output if o]) > 1:
            raise ValueError("BatchNormalization in training mode: export the model in eval mode")
        shape = (-1,) + (1,) * (x.ndim - 2)
        y = scale.reshape(shape) * (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + epsilon) + \
            bias.reshape(shape)
        return (y.astype(x.dtype),)


REF_OPS = _ref_ops() + [BatchNormalization]
