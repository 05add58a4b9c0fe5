"""Regenerate tests/fuzz/corpus/: one valid model and a set of malformed ones.

Each bad_*.ebnn breaks one rule of docs/format.md; every loader (C and Python) must
reject it with a message, never crash. Run: python tests/fuzz/make_corpus.py
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edgebnn.format import spec, to_bytes  # noqa: E402
from edgebnn.ir import GraphBuilder  # noqa: E402


def small_model() -> bytes:
    rng = np.random.default_rng(1)
    b = GraphBuilder()
    x = b.input("x", (1, 6, 6, 3))
    y = b.conv2d(x, rng.standard_normal((8, 3, 3, 3)).astype(np.float32), padding="same", name="conv")
    h = b.sign_pack(y, name="sign")
    h = b.bconv2d(h, b.const_bits(np.where(rng.random((4, 3, 3, 8)) < 0.5, 1, -1)), padding="same", name="bconv")
    b.output(b.softmax(b.reshape(h, (1, 144)), name="softmax"), name="y")
    return to_bytes(b.build({"producer": "corpus"}))


def layers_model() -> bytes:
    """Float layers XNNPACK runs, a fused HetConv, and an int8 block, so the fuzzer and the
    sanitizer build reach those paths from a valid start."""
    rng = np.random.default_rng(2)
    b = GraphBuilder()
    x = b.input("x", (1, 6, 6, 4))
    h = b.hetconv2d(x, rng.standard_normal((8, 3, 3, 2)).astype(np.float32),
                    rng.standard_normal((8, 2)).astype(np.float32), 2, padding="same", name="het")
    h = b.depthwise_conv2d(h, rng.standard_normal((3, 3, 8)).astype(np.float32), padding="same", name="dw")
    h = b.max_pool2d(h, 2, name="pool")
    q = b.quantize(h, scale=0.05, zero_point=-2, name="q")
    w = rng.integers(-127, 128, (6, 3, 3, 8)).astype(np.int8)
    q = b.conv2d(q, b.const(w, scale=np.full(6, 0.01, np.float32), axis=0), bias=np.arange(6), padding="same",
                 activation="relu", out_scale=0.1, out_zero_point=3, name="qconv")
    q = b.add(q, q, out_scale=0.2, out_zero_point=0, name="qadd")
    q = b.global_avg_pool(q, out_scale=0.1, out_zero_point=1, name="qgap")
    b.output(b.dequantize(b.reshape(q, (1, 6)), name="deq"), name="y")
    return to_bytes(b.build({"producer": "corpus"}))


def int8_model() -> bytes:
    """A small MobileNet-style int8 network for the whole-model q8 test (tests/c/test_q8_model.c):
    every q8 op (conv 3x3 through im2col, depthwise with and without stride, pointwise conv,
    residual ADD, FC, QUANTIZE), channel counts off the 16-lane blocks, per-tensor weights with a
    zero point and the code -128 (NEON's plain path) next to per-channel ones without (its
    int16 pair sums)."""
    rng = np.random.default_rng(3)

    def w8(shape, lo=-128):
        return rng.integers(lo, 128, shape).astype(np.int8)

    def chan(n):
        return (rng.random(n) * 0.01 + 0.004).astype(np.float32)

    b = GraphBuilder()
    x = b.input("x", (1, 13, 11, 3))
    q = b.quantize(x, scale=0.02, zero_point=-5, name="q")
    h = b.conv2d(q, b.const(w8((20, 3, 3, 3)), scale=0.01, zero_point=3), bias=rng.integers(-900, 900, 20),
                 strides=2, padding="same", activation="relu", out_scale=0.05, out_zero_point=-128, name="stem")
    d = b.depthwise_conv2d(h, b.const(w8((3, 3, 20), -127), scale=chan(20), axis=2), bias=rng.integers(-300, 300, 20),
                           padding="same", activation="relu6", out_scale=0.04, out_zero_point=-128, name="dw1")
    p = b.conv2d(d, b.const(w8((20, 1, 1, 20), -127), scale=chan(20), axis=0), bias=rng.integers(-500, 500, 20),
                 out_scale=0.07, out_zero_point=2, name="pw1")
    h = b.add(h, p, activation="relu", out_scale=0.08, out_zero_point=-100, name="res")
    d = b.depthwise_conv2d(h, b.const(w8((3, 3, 20)), scale=0.02, zero_point=-7), bias=None, strides=2,
                           padding="same", out_scale=0.1, out_zero_point=5, name="dw2")
    p = b.conv2d(d, b.const(w8((37, 1, 1, 20), -127), scale=chan(37), axis=0), bias=rng.integers(-500, 500, 37),
                 activation="relu", out_scale=0.06, out_zero_point=-128, name="pw2")
    f = b.fully_connected(b.reshape(p, (1, 4 * 3 * 37)), b.const(w8((10, 444)), scale=0.003, zero_point=1),
                          bias=rng.integers(-2000, 2000, 10), out_scale=0.6, out_zero_point=0, name="fc")
    b.output(p, name="features")
    b.output(f, name="y")
    return to_bytes(b.build({"producer": "corpus"}))


def sections(buf: bytes) -> dict[bytes, tuple[int, int, int]]:
    _, _, _, _, n, _, d = spec.HEADER.unpack_from(buf, 0)
    out = {}
    for i in range(n):
        tag, _, off, size = spec.SECTION.unpack_from(buf, d + i * spec.SECTION.size)
        out[tag] = (d + i * spec.SECTION.size, off, size)
    return out


def patch(buf: bytes, off: int, fmt: str, *vals) -> bytes:
    b = bytearray(buf)
    struct.pack_into(fmt, b, off, *vals)
    return bytes(b)


def cases(good: bytes) -> dict[str, bytes]:
    sec = sections(good)
    tens_off = sec[b"TENS"][1] + 8          # first tensor record
    grph_off = sec[b"GRPH"][1]
    n_in, n_out = struct.unpack_from("<II", good, grph_off + 4)
    op0 = grph_off + ((16 + 4 * (n_in + n_out) + 7) & ~7)
    op0_size = struct.unpack_from("<I", good, op0)[0]
    op1 = op0 + op0_size
    # find a constant tensor record (data_size != 0)
    n_t = struct.unpack_from("<I", good, tens_off - 8)[0]
    const_rec = next(tens_off + i * spec.TENSOR.size for i in range(n_t)
                     if struct.unpack_from("<Q", good, tens_off + i * spec.TENSOR.size + 48)[0])
    c = {
        "empty": b"",
        "short_header": good[:40],
        "bad_magic": b"EBNX" + good[4:],
        "bad_version": patch(good, 4, "<H", 9),
        "truncated_half": good[: len(good) // 2],
        "truncated_last_byte": good[:-1],
        "size_field_lies": patch(good, 8, "<Q", len(good) + 64),
        "too_many_sections": patch(good, 16, "<I", 100000),
        "section_past_end": patch(good, sec[b"DATA"][0] + 16, "<Q", 1 << 40),
        "section_offset_misaligned": patch(good, sec[b"GRPH"][0] + 8, "<Q", sec[b"GRPH"][1] + 8),
        "missing_graph_section": patch(good, sec[b"GRPH"][0], "<4s", b"XXXX"),
        "tensor_count_huge": patch(good, tens_off - 8, "<I", 0xFFFFFFF0),
        "tensor_unknown_dtype": patch(good, tens_off + 8, "<B", 77),
        "tensor_zero_ndim": patch(good, tens_off + 9, "<B", 0),
        "tensor_dim_zero": patch(good, tens_off + 16, "<I", 0),
        "tensor_dims_overflow": patch(patch(good, tens_off + 16, "<I", 0x7FFFFFFF), tens_off + 20, "<I", 0x7FFFFFFF),
        "tensor_name_past_strings": patch(good, tens_off, "<I", 1 << 30),
        "const_data_past_end": patch(good, const_rec + 40, "<Q", 1 << 40),
        "const_data_misaligned": patch(good, const_rec + 40, "<Q", 8),
        "const_size_mismatch": patch(good, const_rec + 48, "<Q", 12),
        "op_count_huge": patch(good, grph_off, "<I", 0x00FFFFFF),
        "op_unknown_code": patch(good, op0 + 4, "<H", 999),
        "op_record_size_zero": patch(good, op0, "<I", 0),
        "op_record_size_past_end": patch(good, op0, "<I", 1 << 20),
        "op_input_index_oob": patch(good, op0 + spec.OP_HEADER.size, "<I", 12345),
        # the first op reads the second op's output
        "op_reads_before_write": patch(good, op0 + spec.OP_HEADER.size, "<I",
                                       struct.unpack_from("<I", good, op1 + spec.OP_HEADER.size + 4 * struct.unpack_from(
                                           "<H", good, op1 + 6)[0])[0]),
        "op_too_many_inputs": patch(good, op0 + 6, "<H", 300),
        "op_attr_count_huge": patch(good, op0 + 10, "<H", 60000),
        "graph_output_oob": patch(good, grph_off + 16 + 4 * n_in, "<I", 9999),
        "graph_input_is_const": patch(good, grph_off + 16, "<I", 1),
    }
    return c


def main():
    out = ROOT / "tests" / "fuzz" / "corpus"
    out.mkdir(parents=True, exist_ok=True)
    good = small_model()
    (out / "good_small.ebnn").write_bytes(good)
    (out / "good_layers.ebnn").write_bytes(layers_model())
    (out / "good_int8.ebnn").write_bytes(int8_model())
    for name, data in cases(good).items():
        (out / f"bad_{name}.ebnn").write_bytes(data)
    print(f"wrote {len(cases(good)) + 3} files to {out}")


if __name__ == "__main__":
    main()
